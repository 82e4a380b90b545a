"""All of lanewatch's settings in one place: default, env var, YAML file, flags.

Precedence, lowest first: the defaults (:mod:`.settings`), the YAML file
(``--config`` or ``LANEWATCH_CONFIG``), environment variables, command-line
flags. Every setting is documented where it is declared and listed by
``lanewatch config``; ``Settings.validate()`` runs at start-up and names the
setting that is wrong (``compare.alpha=2.0: must be in (0.0, 1.0)``).

Top-level settings are YAML keys, env vars ``LANEWATCH_<NAME>`` and (for some)
flags. A *section* groups settings: YAML ``section: {key: value}``, env var
``LANEWATCH_<SECTION>__<KEY>`` (two underscores); an unknown key in a section is
an error naming ``section.key``. YAML layout (every key optional)::

    host: 127.0.0.1
    liveness_ttl_s: 10
    request_lane_attributes: [lane, x-mse-tag]
    routing_rules:               # per-service routing rules (scenario 3); formerly `rules:`
      - {service: B, match: {x-user-id: "100"}, lane: gray}
    topology:                    # declared services and lanes, always live
      C: [base, gray]
    compare: {min_requests: 30, alpha: 0.01, min_latency_effect: 0.05}
    dead_lanes: {after_s: 60}
    metrics: {max_series: 10000}

See ``docs/configuration.md`` for the full table.
"""

from __future__ import annotations

from lanewatch.config.fields import ConfigError
from lanewatch.config.routing import Rule, parse_rules
from lanewatch.config.settings import CompareSettings, DeadLaneSettings, MetricsSettings, Settings
from lanewatch.config.sources import describe, env_name, load, with_overrides

__all__ = ["CompareSettings", "ConfigError", "DeadLaneSettings", "MetricsSettings", "Rule", "Settings",
           "describe", "env_name", "load", "parse_rules", "with_overrides"]
