"""Routing rules in time: versions (:mod:`.versions`) and their live reload (:mod:`.reload`)."""
