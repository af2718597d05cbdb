/**
 * The service's HTTP routes: the shop's API, and the chaos endpoints that take a dependency
 * down and bring it back (`POST /admin/chaos/:dependency/outage|recover`), protected by the
 * admin token like the library's own admin routes.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createHash, timingSafeEqual } from "node:crypto"
import type * as Shop from "./shop.js"

const json = (body: unknown, status = 200, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson(body, { status, ...(headers === undefined ? {} : { headers }) })

const problem = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  json({ error, message }, status, headers)

const OrderBody = Schema.Struct({ product: Schema.String, quantity: Schema.Int.pipe(Schema.between(1, 100)) })
const AskBody = Schema.Struct({ prompt: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(2000)) })

/** The body, decoded, or a 400 naming what is wrong. */
const body = <A, I>(schema: Schema.Schema<A, I>) =>
  HttpServerRequest.schemaBodyJson(schema).pipe(
    Effect.mapError(() => problem(400, "BadRequest", "the body is not the JSON this route takes"))
  )

/** The shop's API. */
export const api = (shop: Shop.Shop): HttpRouter.HttpRouter =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/api/products/:id",
      Effect.gen(function*() {
        const { id = "" } = yield* HttpRouter.params
        return yield* shop.product(id).pipe(
          Effect.map((read) => json(read)),
          Effect.catchTags({
            ProductNotFound: (error) => Effect.succeed(problem(404, "ProductNotFound", `no product ${error.product}`)),
            DatabaseError: (error) => Effect.succeed(problem(503, "DatabaseUnavailable", error.message))
          })
        )
      })
    ),
    HttpRouter.post(
      "/api/orders",
      Effect.gen(function*() {
        const order = yield* body(OrderBody)
        return yield* shop.order(order.product, order.quantity).pipe(
          Effect.map((result) =>
            result._tag === "Written"
              ? json({ status: "Written", key: result.key }, 201)
              : json({ status: "Queued", key: result.key }, 202)
          ),
          Effect.catchTags({
            ProductNotFound: (error) => Effect.succeed(problem(400, "ProductNotFound", `no product ${error.product}`)),
            ParseError: () => Effect.succeed(problem(400, "BadRequest", "not an order"))
          }),
          // A write the database refuses, or that the outbox cannot hold, is refused.
          Effect.catchAll((error) => Effect.succeed(problem(503, "WriteRefused", error.message)))
        )
      }).pipe(Effect.catchAll(Effect.succeed))
    ),
    HttpRouter.post(
      "/api/ask",
      Effect.gen(function*() {
        const { prompt } = yield* body(AskBody)
        return json(yield* shop.ask(prompt))
      }).pipe(Effect.catchAll(Effect.succeed))
    )
  )

const digest = (token: string) => createHash("sha256").update(token).digest()

/**
 * The chaos endpoints: with no admin token configured they answer 404; without the token,
 * or with a wrong one, 401 and nothing changes; for an unknown dependency or action, 404.
 * Each action is logged with the dependency and the outcome, never the token.
 */
export const chaos = (
  outages: Shop.OutageSwitches,
  adminToken: Option.Option<Redacted.Redacted<string>>
): HttpRouter.HttpRouter =>
  HttpRouter.empty.pipe(HttpRouter.post(
    "/admin/chaos/:dependency/:action",
    Effect.gen(function*() {
      if (Option.isNone(adminToken)) return problem(404, "NotFound", "admin routes are off: no admin token is set")
      const expected = digest(Redacted.value(adminToken.value))
      const request = yield* HttpServerRequest.HttpServerRequest
      const { action = "", dependency = "" } = yield* HttpRouter.params
      const given = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(request.headers["authorization"] ?? "")?.[1]
      // Compared in constant time, as digests of equal length.
      if (given === undefined || !timingSafeEqual(expected, digest(given))) {
        yield* Effect.logWarning("chaos refused").pipe(
          Effect.annotateLogs({ action, dependency, outcome: given === undefined ? "no token" : "wrong token" })
        )
        return problem(401, "Unauthorized", "an Authorization: Bearer <admin token> header is required", {
          "www-authenticate": "Bearer"
        })
      }
      const outage = outages.get(dependency)
      if (outage === undefined) {
        const known = [...outages.keys()].join(", ")
        return problem(404, "UnknownDependency", `no dependency ${dependency}: one of ${known}`)
      }
      if (action !== "outage" && action !== "recover") {
        return problem(404, "UnknownAction", `no chaos action ${action}: outage or recover`)
      }
      yield* action === "outage" ? outage.outage : outage.recover
      yield* Effect.logInfo(`chaos: ${action} of ${dependency}`).pipe(
        Effect.annotateLogs({ action, dependency, outcome: "done" })
      )
      return json({ dependency, action, down: yield* outage.down })
    })
  ))
