"""Routing rules: the model and its conditions (:mod:`.model`, :mod:`.match`), their YAML form
(:mod:`.parse`), rules imported from router configuration (:mod:`.imports`); and rules in time:
versions (:mod:`.versions`) and their live reload (:mod:`.reload`)."""
