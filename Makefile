# Shortcuts for the two set-up commands in the README.
.PHONY: run test
run:
	scripts/run.sh
test:
	scripts/test.sh
