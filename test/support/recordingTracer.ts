import { Effect, Layer, Option, Tracer } from "effect"
import type { Context, Exit } from "effect"

/** An event as a span recorded it. */
export interface RecordedEvent {
  readonly name: string
  readonly time: bigint
  readonly attributes: Record<string, unknown>
}

/** A span as the recording tracer saw it, with its events and how it ended. */
export interface RecordedSpan extends Tracer.Span {
  readonly events: Array<RecordedEvent>
  readonly attributeRecord: Record<string, unknown>
  readonly exit: Exit.Exit<unknown, unknown> | undefined
  readonly parentId: string | undefined
}

/**
 * A tracer that keeps every span it makes, in the order they started, as an exporter would
 * see them (name, parent, attributes, events, end).
 */
export const makeRecordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  let next = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const id = `span-${++next}`
      const attributes = new Map<string, unknown>()
      const events: Array<RecordedEvent> = []
      const record: Record<string, unknown> = {}
      let status: Tracer.SpanStatus = { _tag: "Started", startTime }
      let exit: Exit.Exit<unknown, unknown> | undefined
      const span: RecordedSpan = {
        _tag: "Span",
        name,
        spanId: id,
        traceId: Option.isSome(parent) ? parent.value.traceId : `trace-${id}`,
        parent,
        context: context as Context.Context<never>,
        get status() {
          return status
        },
        attributes,
        links,
        sampled: true,
        kind,
        events,
        attributeRecord: record,
        get exit() {
          return exit
        },
        parentId: Option.isSome(parent) ? parent.value.spanId : undefined,
        end(endTime, ended) {
          status = { _tag: "Ended", startTime, endTime, exit: ended }
          exit = ended
        },
        attribute(key, value) {
          attributes.set(key, value)
          record[key] = value
        },
        event(eventName, time, eventAttributes) {
          events.push({ name: eventName, time, attributes: eventAttributes ?? {} })
        },
        addLinks() {}
      }
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  return {
    tracer,
    spans,
    layer: Layer.setTracer(tracer),
    /** The spans named `name`. */
    named: (name: string) => spans.filter((span) => span.name === name),
    /** Every event of every span named `name`, in order, with their names. */
    eventsOf: (name: string) => spans.filter((span) => span.name === name).flatMap((span) => span.events),
    /** Runs `self` with this tracer. */
    run: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.withTracer(self, tracer)
  }
}
