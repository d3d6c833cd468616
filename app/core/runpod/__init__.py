"""RunPod: REST v2 client, pod agent and launcher (DESIGN.md §6)."""
