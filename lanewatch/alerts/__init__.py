"""Alerts on lane leakage and on gray doing worse than base.

Pure rules (:mod:`.rules`) and state (:mod:`.state`) over a sliding window of the
span path's batches (:mod:`.window`), evaluated every second by :mod:`.engine` (a
:class:`~lanewatch.collect.sink.BatchSink`); thin notifiers deliver the changes
(:mod:`.notify`: Alertmanager-format webhooks; :mod:`.alertmanager`: push to an
Alertmanager). :mod:`.model` is the alert value every part passes around.
"""
