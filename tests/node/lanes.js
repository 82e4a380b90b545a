'use strict';
// Lanes for a Node.js service with stock OpenTelemetry parts (what docs/instrumentation.md shows).
//
// - request lane: W3C baggage entry `lane`, copied onto every span by the standard
//   BaggageSpanProcessor; the lane header (`x-mse-tag`, aliases accepted) maps to and
//   from that entry through the small propagator below, composed after tracecontext
//   and baggage (never replacing them);
// - instance lane: resource attribute `service.lane` (OTEL_RESOURCE_ATTRIBUTES);
// - heartbeat: OTLP gauge `lanewatch.instance.up`, 1 every few seconds, 0 once on stop.
//
// Env: LANEWATCH_LANE_HEADER (default x-mse-tag), LANEWATCH_DYEING (true: stamp this
// instance's lane onto requests that arrive without one), LANEWATCH_PASSTHROUGH_HEADERS
// (comma list, e.g. x-user-id), LANEWATCH_HEARTBEAT_INTERVAL_MS (default 2000, 0 = off),
// plus the standard OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_ENDPOINT.

const { propagation, context } = require('@opentelemetry/api');
const { CompositePropagator, W3CTraceContextPropagator, W3CBaggagePropagator } = require('@opentelemetry/core');
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { BaggageSpanProcessor } = require('@opentelemetry/baggage-span-processor');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-proto');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { resourceFromAttributes, envDetector, detectResources } = require('@opentelemetry/resources');

const { randomUUID } = require('crypto');

const LANE_KEY = 'lane';
const ALIASES = ['x-mse-tag', 'x-asm-prefer-tag', 'x-opensergo-traffic', 'service-lane'];
const LANE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/;

function list(raw) {
  return (raw || '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
}

/** Lane header <-> baggage `lane`; pass-through headers <-> baggage entries of the same name. */
class LaneHeaderPropagator {
  constructor({ header = 'x-mse-tag', passthrough = [], dyeLane = null } = {}) {
    this.header = header;
    this.read = [header, ...ALIASES.filter((a) => a !== header)];
    this.passthrough = passthrough;
    this.dyeLane = dyeLane && dyeLane !== 'base' ? dyeLane : null;
  }

  inject(ctx, carrier, setter) {
    const bag = propagation.getBaggage(ctx);
    if (!bag) return;
    const lane = bag.getEntry(LANE_KEY);
    if (lane && LANE_RE.test(lane.value)) setter.set(carrier, this.header, lane.value);
    for (const name of this.passthrough) {
      const entry = bag.getEntry(name);
      if (entry) setter.set(carrier, name, entry.value);
    }
  }

  extract(ctx, carrier, getter) {
    let bag = propagation.getBaggage(ctx) || propagation.createBaggage();
    for (const name of this.read) {
      let value = getter.get(carrier, name);
      if (Array.isArray(value)) value = value[0];
      if (typeof value !== 'string' || !value.trim()) continue;
      if (LANE_RE.test(value.trim())) {
        bag = bag.setEntry(LANE_KEY, { value: value.trim() });
        break;
      }
      console.warn(`lanes: ignoring bad ${name} header value`);
    }
    for (const name of this.passthrough) {
      let value = getter.get(carrier, name);
      if (Array.isArray(value)) value = value[0];
      if (typeof value === 'string' && value && value.length <= 256) bag = bag.setEntry(name, { value });
    }
    if (this.dyeLane && !bag.getEntry(LANE_KEY)) bag = bag.setEntry(LANE_KEY, { value: this.dyeLane });
    return bag.getAllEntries().length ? propagation.setBaggage(ctx, bag) : ctx;
  }

  fields() {
    return [this.header, ...this.passthrough];
  }
}

/** The `lanewatch.instance.up` gauge on its own MeterProvider; returns stop() sending 0 once. */
function startHeartbeat(resource, intervalMs) {
  let value = 1;
  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter(),
    exportIntervalMillis: intervalMs,
    exportTimeoutMillis: Math.min(intervalMs, 5000),
  });
  const provider = new MeterProvider({ resource, readers: [reader] });
  provider.getMeter('lanes').createObservableGauge('lanewatch.instance.up', {
    description: '1 while this instance serves, 0 once when it leaves on purpose',
  }).addCallback((result) => result.observe(value));
  let stopped = null;
  return () => {
    if (!stopped) {
      value = 0;
      stopped = provider.shutdown();
    }
    return stopped;
  };
}

/** Start the OpenTelemetry SDK with lanes; returns an async stop(). Call before requiring `http` users. */
function startLanes() {
  const detected = detectResources({ detectors: [envDetector] }).attributes;
  const instanceLane = detected['service.lane'] || 'base';
  const dyeing = ['1', 'true', 'yes', 'on'].includes((process.env.LANEWATCH_DYEING || '').toLowerCase());
  const passthrough = list(process.env.LANEWATCH_PASSTHROUGH_HEADERS);
  const lanePropagator = new LaneHeaderPropagator({
    header: (process.env.LANEWATCH_LANE_HEADER || 'x-mse-tag').toLowerCase(),
    passthrough,
    dyeLane: dyeing ? instanceLane : null,
  });
  const keep = new Set([LANE_KEY, ...passthrough]);
  const resource = resourceFromAttributes({
    'service.lane': instanceLane,
    'service.instance.id': detected['service.instance.id'] || randomUUID(),
  }).merge(resourceFromAttributes(detected));
  const sdk = new NodeSDK({
    resource,
    textMapPropagator: new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator(), lanePropagator],
    }),
    spanProcessors: [
      new BaggageSpanProcessor((key) => keep.has(key)),
      new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 200 }),
    ],
    instrumentations: [new HttpInstrumentation()],
  });
  sdk.start();
  const interval = Number(process.env.LANEWATCH_HEARTBEAT_INTERVAL_MS || 2000);
  const stopHeartbeat = interval > 0 ? startHeartbeat(resource, interval) : async () => {};
  return async () => {
    await stopHeartbeat();
    await sdk.shutdown();
  };
}

module.exports = { LaneHeaderPropagator, startLanes, startHeartbeat, context };
