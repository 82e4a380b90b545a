"""Routing rules: the model and its conditions (:mod:`.model`, :mod:`.match`), their YAML form
(:mod:`.parse`), and rules imported from router configuration (:mod:`.imports`)."""
