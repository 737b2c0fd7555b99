from singleuser.app import main

main()
