"""Reserved for the Python API over a project and the pytest plugin (not written yet).

The CLI talks to the supervisor through orchestrator.daemon.handle today."""
