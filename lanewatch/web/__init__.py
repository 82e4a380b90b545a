"""HTTP adapters beside the query API: the release gate (:mod:`.gate`)."""
