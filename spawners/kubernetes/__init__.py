"""The Kubernetes spawner: user servers as pods (`KubeSpawner`, in `spawner`).

Modules: `names` (safe, stable Kubernetes names), `manifest` (the pod, volume
claim and service objects), `profiles` (the options form), `settings` (the
spawner's settings), `podstatus` (reading pod status and events), `client`
(the API connection), `informer` (the shared list+watch caches) and `spawner`
(the Spawner itself).
"""

from spawners.kubernetes.spawner import KubeSpawner

__all__ = ["KubeSpawner"]
