"""The library every front end shares: the model bundle, the request layer, the lock-step engine and the speed levers
(no flags, no UI)."""
