"""``lanewatch demo``: the write-up's A (cart) -> B (trade) -> C (stock) mesh, live.

Every part is a real process on loopback, started by :mod:`lanewatch.demo.launch`
and stopped by :mod:`lanewatch.demo.supervisor`, orchestrated by
:mod:`lanewatch.demo.runner` (scenario phases in :mod:`lanewatch.demo.phases`):

* ``control``  (in the demo process): the registry (instances, lanes, liveness),
  the fault switchboard and the ingress rules, over HTTP;
* ``service``  one process per instance (A, B, C; base and gray), instrumented
  with :mod:`lanewatch.instrument`, each answering like the write-up:
  ``Agray[127.0.0.1:PORT] -> Bgray[...] -> Cgray[...]``;
* ``ingress``  host routing and canary rules in front of A;
* ``proxy``    a forward proxy between A and B (it can strip the lane header);
* ``traffic``  the request generator with its live progress line;
* the collector: ``lanewatch up`` as a subprocess.
"""
