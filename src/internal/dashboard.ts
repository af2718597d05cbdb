// The dashboard: one self-contained HTML page (inline CSS and script, nothing loaded from
// elsewhere) that reads `/health/resilience` and `/health/stream` and calls the admin routes.
// The page renders every value with `textContent`, never as markup, and its Content Security
// Policy lets it talk only to its own origin.

const escapeAttribute = (text: string): string =>
  text
    .replace(/&/g, "&amp;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")

const style = `
:root {
  color-scheme: light;
  --ink: #1a1a1a; --muted: #4a4a4a; --line: #c8c8c8; --page: #f6f6f4; --card: #ffffff;
  --ok-bg: #e3f2e5; --ok-ink: #14532d; --ok-edge: #2e7d32;
  --warn-bg: #fff4d6; --warn-ink: #6b4300; --warn-edge: #c77700;
  --bad-bg: #fde4e4; --bad-ink: #7f1111; --bad-edge: #c62828;
  --forced-ink: #3b1a6b; --forced-edge: #5e35b1;
  --unknown-bg: #ececec; --unknown-ink: #333333; --unknown-edge: #757575;
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: var(--page); }
header, main { max-width: 1280px; margin: 0 auto; padding: 0 20px; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; padding-top: 16px; }
h1 { font-size: 20px; margin: 0; flex: 1 1 auto; }
h2 { font-size: 16px; margin: 20px 0 8px; }
h3 { font-size: 16px; margin: 0; overflow-wrap: anywhere; }
.connection { font-size: 13px; padding: 2px 8px; border-radius: 10px; border: 1px solid var(--line);
  background: var(--card); }
.connection[data-connection="live"] { border-color: var(--ok-edge); color: var(--ok-ink); }
.connection[data-connection="reconnecting"] { border-color: var(--warn-edge); color: var(--warn-ink); }
.banner { margin-top: 12px; padding: 14px 18px; border-radius: 8px; border-left: 8px solid var(--unknown-edge);
  background: var(--unknown-bg); color: var(--unknown-ink); display: flex; flex-wrap: wrap; gap: 8px 28px;
  align-items: baseline; }
.banner strong { font-size: 22px; }
.banner[data-health="Healthy"] { background: var(--ok-bg); color: var(--ok-ink); border-color: var(--ok-edge); }
.banner[data-health="Degraded"] { background: var(--warn-bg); color: var(--warn-ink);
  border-color: var(--warn-edge); }
.banner[data-health="Critical"], .banner[data-health="Emergency"] { background: var(--bad-bg);
  color: var(--bad-ink); border-color: var(--bad-edge); }
.banner[data-health="Emergency"] strong { text-decoration: underline; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 14px; }
.tile { background: var(--card); border: 1px solid var(--line); border-top: 8px solid var(--unknown-edge);
  border-radius: 8px; padding: 12px 14px; }
.tile[data-color="ok"] { border-top-color: var(--ok-edge); }
.tile[data-color="warn"] { border-top-color: var(--warn-edge); }
.tile[data-color="bad"] { border-top-color: var(--bad-edge); }
.tile-head { display: flex; justify-content: space-between; align-items: baseline; gap: 8px; }
.badge { display: inline-block; font-size: 13px; font-weight: 600; padding: 1px 8px; border-radius: 10px;
  border: 1px solid var(--unknown-edge); background: var(--unknown-bg); color: var(--unknown-ink);
  white-space: nowrap; }
.badge[data-color="ok"] { background: var(--ok-bg); color: var(--ok-ink); border-color: var(--ok-edge); }
.badge[data-color="warn"] { background: var(--warn-bg); color: var(--warn-ink); border-color: var(--warn-edge); }
.badge[data-color="bad"] { background: var(--bad-bg); color: var(--bad-ink); border-color: var(--bad-edge); }
.badge[data-forced="true"] { border: 2px dashed var(--forced-edge); color: var(--forced-ink);
  background-image: repeating-linear-gradient(135deg, transparent 0 6px, rgba(94, 53, 177, 0.12) 6px 12px); }
.meta { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
dl.figures { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 6px 0; }
dl.figures dt { color: var(--muted); }
[hidden] { display: none !important; }
.visually-hidden { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
dl.figures dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.breaker { border-top: 1px solid var(--line); padding-top: 8px; margin-top: 8px; }
.breaker-head { display: flex; justify-content: space-between; gap: 8px; align-items: baseline; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
button { font: inherit; font-size: 13px; padding: 4px 10px; border-radius: 6px; border: 1px solid #555;
  background: #fff; color: var(--ink); cursor: pointer; }
button:hover { background: #eee; }
button:focus-visible, input:focus-visible { outline: 3px solid #1565c0; outline-offset: 2px; }
button.primary { background: #1f3a93; color: #fff; border-color: #1f3a93; }
button.primary:hover { background: #162b6e; }
ol.transitions { margin: 4px 0 0; padding-left: 18px; font-size: 13px; color: var(--muted); }
ol.transitions li { margin: 1px 0; }
time { font-variant-numeric: tabular-nums; }
.admin { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
  margin-top: 14px; display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; }
.admin label { font-weight: 600; }
.admin input { font: inherit; padding: 4px 8px; border: 1px solid #555; border-radius: 6px; min-width: 220px; }
.message { margin: 8px 0 0; padding: 8px 12px; border-radius: 6px; }
.message[data-kind="error"] { background: var(--bad-bg); color: var(--bad-ink); border: 1px solid var(--bad-edge); }
.message[data-kind="ok"] { background: var(--ok-bg); color: var(--ok-ink); border: 1px solid var(--ok-edge); }
.message:empty { display: none; }
.empty { color: var(--muted); }
footer { max-width: 1280px; margin: 24px auto; padding: 0 20px; color: var(--muted); font-size: 13px; }
`

// Plain ES2017 in the browser. No template literals and no backslashes, so the text below
// reaches the page unchanged.
const script = `
(function () {
  "use strict"
  var base = document.body.getAttribute("data-base-path") || ""
  var TOKEN_KEY = "effect-resilience.admin-token"
  var MAX_TRANSITIONS = 20
  var TILE_TRANSITIONS = 5
  var POLL_MS = 5000
  var ACTIONS = [
    { path: "force-open", label: "Force open" },
    { path: "force-closed", label: "Force closed" },
    { path: "half-open", label: "Half-open" },
    { path: "reset", label: "Reset" }
  ]

  var el = function (tag, attributes, text) {
    var node = document.createElement(tag)
    if (attributes) {
      for (var key in attributes) {
        if (Object.prototype.hasOwnProperty.call(attributes, key)) node.setAttribute(key, attributes[key])
      }
    }
    if (text !== undefined && text !== null) node.textContent = String(text)
    return node
  }
  var byId = function (id) { return document.getElementById(id) }

  var colorOfDependency = function (state) {
    return state === "Operational" ? "ok" : state === "Degraded" ? "warn" : state === "Down" ? "bad" : "unknown"
  }
  var colorOfBreaker = function (state) {
    if (state === "Closed" || state === "ForcedClosed") return "ok"
    if (state === "HalfOpen") return "warn"
    if (state === "Open" || state === "ForcedOpen") return "bad"
    return "unknown"
  }
  var stateLabel = function (state) {
    if (state === "HalfOpen") return "half-open"
    if (state === "ForcedOpen") return "forced open"
    if (state === "ForcedClosed") return "forced closed"
    return String(state).toLowerCase()
  }
  var percent = function (rate) {
    var n = Number(rate)
    if (!isFinite(n)) return "n/a"
    return (n * 100).toFixed(n > 0 && n < 0.1 ? 1 : 0) + "%"
  }
  var duration = function (ms) {
    if (ms === null || ms === undefined) return "n/a"
    var n = Number(ms)
    if (!isFinite(n)) return "n/a"
    if (n < 1000) return Math.round(n) + " ms"
    var s = n / 1000
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s"
    var m = Math.floor(s / 60)
    if (m < 60) return m + " min " + Math.round(s - m * 60) + " s"
    var h = Math.floor(m / 60)
    return h + " h " + (m - h * 60) + " min"
  }
  var clock = function (at) {
    var d = new Date(Number(at))
    return isNaN(d.getTime()) ? "" : d.toLocaleTimeString()
  }
  var breakersOf = function (dependency) {
    var list = Array.isArray(dependency.breakers) ? dependency.breakers : []
    return list.map(function (b) { return typeof b === "string" ? { name: b } : b })
  }

  // ---------------------------------------------------------------------------
  // state kept between snapshots
  // ---------------------------------------------------------------------------
  var previous = null
  var previousTotals = {}
  var transitions = []
  var tiles = {}

  // The last state seen of each breaker, from the stream's breaker changes or from snapshots
  // (a change the stream did not carry, e.g. while reconnecting, shows up once).
  var breakerStates = {}
  var dependencyOfBreaker = function (breaker) {
    if (!previous) return null
    var found = null
    previous.dependencies.forEach(function (d) {
      breakersOf(d).forEach(function (b) { if (b.name === breaker && found === null) found = d.name })
    })
    return found
  }
  var noteBreakerState = function (breaker, state, at, reason, dependency) {
    var old = breakerStates[breaker]
    breakerStates[breaker] = state
    if (old === state && reason) {
      // A snapshot showed the transition before the stream's event for it: add the reason.
      var seen = transitions.filter(function (t) { return t.breaker === breaker && t.state === state })[0]
      if (seen && !seen.reason) {
        seen.reason = reason
        renderTransitions()
      }
      return
    }
    if (old === undefined || old === state) return
    addTransition({ at: at, dependency: dependency || dependencyOfBreaker(breaker), subject: "breaker " + breaker,
      breaker: breaker, state: state, reason: reason, from: stateLabel(old), to: stateLabel(state) })
  }
  var describe = function (t) {
    return t.from + " to " + t.to + (t.reason ? " (" + t.reason + ")" : "")
  }

  var addTransition = function (entry) {
    transitions.unshift(entry)
    if (transitions.length > MAX_TRANSITIONS) transitions.length = MAX_TRANSITIONS
    renderTransitions()
  }

  var renderTransitions = function () {
    var list = byId("transitions")
    list.replaceChildren()
    if (transitions.length === 0) {
      list.appendChild(el("li", { "class": "empty" }, "No transitions since the page opened."))
    }
    transitions.forEach(function (t) {
      var item = el("li", { "data-transition-subject": t.subject, "data-to": t.to })
      var when = el("time", { datetime: new Date(t.at).toISOString() }, clock(t.at))
      item.appendChild(when)
      item.appendChild(document.createTextNode(" " + t.subject + ": " + describe(t)))
      list.appendChild(item)
    })
    Object.keys(tiles).forEach(function (name) { renderTileTransitions(name) })
  }

  var renderTileTransitions = function (name) {
    var tile = tiles[name]
    if (!tile) return
    var mine = transitions.filter(function (t) { return t.dependency === name }).slice(0, TILE_TRANSITIONS)
    tile.transitions.replaceChildren()
    if (mine.length === 0) tile.transitions.appendChild(el("li", { "class": "empty" }, "none yet"))
    mine.forEach(function (t) {
      var item = el("li")
      item.appendChild(el("time", { datetime: new Date(t.at).toISOString() }, clock(t.at)))
      item.appendChild(document.createTextNode(" " + (t.subject === name ? "" : t.subject + ": ") + describe(t)))
      tile.transitions.appendChild(item)
    })
  }

  // ---------------------------------------------------------------------------
  // admin
  // ---------------------------------------------------------------------------
  var token = function () {
    try { return sessionStorage.getItem(TOKEN_KEY) || "" } catch (e) { return "" }
  }
  var showMessage = function (kind, text) {
    var box = byId("admin-message")
    box.setAttribute("data-kind", kind)
    box.textContent = text
  }
  var applyAdminVisibility = function () {
    var on = token() !== ""
    document.body.setAttribute("data-admin", on ? "on" : "off")
    var buttons = document.querySelectorAll("[data-admin-control]")
    for (var i = 0; i < buttons.length; i++) buttons[i].hidden = !on
    byId("admin-token-forget").hidden = !on
    byId("admin-state").textContent = on ? "Admin controls are shown; the token is kept for this tab only." :
      "Enter the admin token to show the controls."
  }
  var admin = function (path, what) {
    var secret = token()
    if (secret === "") {
      showMessage("error", "Enter the admin token first.")
      return Promise.resolve()
    }
    showMessage("info", what + ": sending...")
    return fetch(base + path, {
      method: "POST",
      headers: { "Authorization": "Bearer " + secret },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (response.ok) {
        showMessage("ok", what + ": done.")
        return refresh()
      }
      return response.text().then(function (body) {
        var detail = ""
        try {
          var json = JSON.parse(body)
          detail = json && (json.message || json.error || json._tag) ? String(json.message || json.error ||
            json._tag) : ""
        } catch (e) { detail = "" }
        if (response.status === 401) {
          showMessage("error", what + ": refused (401). The admin token is wrong; enter the token the service " +
            "was started with.")
        } else if (response.status === 404) {
          showMessage("error", what + ": not found (404). " + (detail ||
            "The admin routes are off (no token configured) or the breaker is unknown."))
        } else {
          showMessage("error", what + ": failed (" + response.status + ")" + (detail ? ". " + detail : "."))
        }
      })
    }, function (error) {
      showMessage("error", what + ": the request failed (" + (error && error.message ? error.message : error) + ").")
    })
  }

  // ---------------------------------------------------------------------------
  // tiles
  // ---------------------------------------------------------------------------
  var figure = function (list, label, key) {
    list.appendChild(el("dt", null, label))
    var value = el("dd", { "data-field": key })
    list.appendChild(value)
    return value
  }

  var makeBreaker = function (name) {
    var box = el("div", { "class": "breaker", "data-breaker": name })
    var head = el("div", { "class": "breaker-head" })
    head.appendChild(el("span", null, "Breaker " + name))
    var badge = el("span", { "class": "badge", "data-field": "breaker-state" })
    head.appendChild(badge)
    box.appendChild(head)
    var figures = el("dl", { "class": "figures" })
    var rate = figure(figures, "Failure rate", "breaker-failure-rate")
    var calls = figure(figures, "Calls/s", "breaker-calls-per-second")
    var totals = figure(figures, "Calls (rejected)", "breaker-total-calls")
    box.appendChild(figures)
    var actions = el("div", { "class": "actions", role: "group", "aria-label": "Admin actions for breaker " + name })
    ACTIONS.forEach(function (action) {
      var button = el("button", {
        type: "button",
        "data-admin-control": "",
        "data-action": action.path,
        "data-breaker": name,
        "aria-label": action.label + " breaker " + name
      }, action.label)
      button.hidden = token() === ""
      button.addEventListener("click", function () {
        admin("/admin/circuit-breaker/" + encodeURIComponent(name) + "/" + action.path, action.label + " " + name)
      })
      actions.appendChild(button)
    })
    box.appendChild(actions)
    return { box: box, badge: badge, rate: rate, calls: calls, totals: totals }
  }

  var makeTile = function (name) {
    var tile = el("section", { "class": "tile", "data-dependency": name, "aria-label": "Dependency " + name })
    var head = el("div", { "class": "tile-head" })
    head.appendChild(el("h3", null, name))
    var badge = el("span", { "class": "badge", "data-field": "dependency-state" })
    head.appendChild(badge)
    tile.appendChild(head)
    var meta = el("div", { "class": "meta", "data-field": "meta" })
    tile.appendChild(meta)
    var figures = el("dl", { "class": "figures" })
    var rate = figure(figures, "Failure rate", "failure-rate")
    var calls = figure(figures, "Calls/s", "calls-per-second")
    var inState = figure(figures, "In state for", "time-in-state")
    var mttr = figure(figures, "MTTR", "mttr")
    var lastFailure = figure(figures, "Last failure", "last-failure")
    var failover = figure(figures, "Last failover", "failover-time")
    tile.appendChild(figures)
    var breakerBox = el("div")
    tile.appendChild(breakerBox)
    tile.appendChild(el("div", { "class": "meta" }, "Recent transitions"))
    var list = el("ol", { "class": "transitions", "data-field": "tile-transitions" })
    tile.appendChild(list)
    return {
      element: tile, badge: badge, meta: meta, rate: rate, calls: calls, inState: inState, mttr: mttr,
      lastFailure: lastFailure, failover: failover, breakerBox: breakerBox, breakers: {}, transitions: list
    }
  }

  var callsPerSecond = function (key, total, at) {
    var before = previousTotals[key]
    if (typeof total !== "number") return undefined
    if (!before || total < before.total) {
      previousTotals[key] = { total: total, at: at, rate: undefined }
      return undefined
    }
    // Snapshots close together (a fetch and the stream's first event) would give a noisy
    // rate: keep the older one as the base until a second has passed.
    if (at - before.at < 1000) return before.rate
    var rate = (total - before.total) / ((at - before.at) / 1000)
    previousTotals[key] = { total: total, at: at, rate: rate }
    return rate
  }
  var formatRate = function (rate) {
    return rate === undefined || rate === null ? "n/a" : rate.toFixed(rate < 10 ? 1 : 0)
  }

  var renderStatus = function (status) {
    if (!status || !Array.isArray(status.dependencies)) return
    var at = typeof status.at === "number" ? status.at : Date.now()
    var banner = byId("system")
    banner.setAttribute("data-health", String(status.health))
    banner.setAttribute("data-service-level", String(status.serviceLevel))
    if (byId("system-health").textContent !== String(status.health)) {
      // Announced once per change of health (the banner itself refreshes every few seconds).
      byId("announcer").textContent = "System health " + String(status.health) + ", service level " +
        String(status.serviceLevel)
    }
    byId("system-health").textContent = String(status.health)
    byId("service-level").textContent = String(status.serviceLevel)
    byId("read-only").textContent = status.readOnly ? "yes" : "no"
    byId("operational").textContent = percent(status.operational)
    byId("updated").textContent = clock(at)
    byId("updated").setAttribute("datetime", new Date(at).toISOString())

    var seen = {}
    var grid = byId("tiles")
    status.dependencies.forEach(function (dependency) {
      var name = String(dependency.name)
      seen[name] = true
      var tile = tiles[name]
      if (!tile) {
        tile = tiles[name] = makeTile(name)
        renderTileTransitions(name)
      }
      grid.appendChild(tile.element) // keeps the server's order
      var breakers = breakersOf(dependency)
      var own = breakers.filter(function (b) { return b.name === name })[0] || (breakers.length === 1 ? breakers[0] :
        undefined)
      tile.element.setAttribute("data-dependency-state", String(dependency.state))
      tile.element.setAttribute("data-state", own && own.state ? String(own.state) : String(dependency.state))
      tile.element.setAttribute("data-color", own && own.state && colorOfBreaker(own.state) === "bad" ? "bad" :
        colorOfDependency(dependency.state))
      tile.badge.textContent = String(dependency.state)
      tile.badge.setAttribute("data-color", colorOfDependency(dependency.state))
      tile.meta.textContent = String(dependency.kind) + (dependency.critical ? ", critical" : ", not critical") +
        (dependency.fallbackActive ? ", fallback active" : "") +
        (dependency.recoveries ? ", " + dependency.recoveries + (dependency.recoveries === 1 ? " recovery" :
          " recoveries") : "")
      tile.rate.textContent = percent(dependency.failureRate)
      tile.inState.textContent = duration(dependency.timeInState)
      tile.mttr.textContent = duration(dependency.mttr)
      tile.lastFailure.textContent = dependency.lastFailure ? clock(dependency.lastFailure.at) + " " +
        String(dependency.lastFailure.message) : "none"

      var hasFailover = dependency.failoverTime !== undefined && dependency.failoverTime !== null
      tile.failover.textContent = hasFailover ? duration(dependency.failoverTime) : "n/a"
      tile.failover.hidden = !hasFailover
      tile.failover.previousSibling.hidden = !hasFailover

      var sum = 0
      var known = false
      var kept = {}
      breakers.forEach(function (b) {
        var key = name + ":" + b.name
        kept[b.name] = true
        var row = tile.breakers[b.name]
        if (!row) row = tile.breakers[b.name] = makeBreaker(String(b.name))
        tile.breakerBox.appendChild(row.box)
        var state = b.state === undefined ? "unknown" : String(b.state)
        row.box.setAttribute("data-state", state)
        row.badge.textContent = stateLabel(state)
        row.badge.setAttribute("data-color", colorOfBreaker(state))
        row.badge.setAttribute("data-forced", state === "ForcedOpen" || state === "ForcedClosed" ? "true" : "false")
        row.rate.textContent = b.failureRate === undefined ? "n/a" : percent(b.failureRate)
        // The dependency's own and only breaker: its rate and calls are the tile's, shown once.
        var same = b.name === name && breakers.length === 1
        row.rate.hidden = same
        row.rate.previousSibling.hidden = same
        row.calls.hidden = same
        row.calls.previousSibling.hidden = same
        var rate = callsPerSecond(key, b.totalCalls, at)
        row.calls.textContent = formatRate(rate)
        row.totals.textContent = b.totalCalls === undefined ? "n/a" : String(b.totalCalls) + " (" +
          String(b.rejectedCalls === undefined ? 0 : b.rejectedCalls) + ")"
        if (typeof rate === "number") {
          sum += rate
          known = true
        }
        noteBreakerState(String(b.name), state, at, null, name)
      })
      Object.keys(tile.breakers).forEach(function (b) {
        if (!kept[b]) {
          tile.breakers[b].box.remove()
          delete tile.breakers[b]
        }
      })
      tile.calls.textContent = known ? formatRate(sum) : "n/a"
    })
    Object.keys(tiles).forEach(function (name) {
      if (!seen[name]) {
        tiles[name].element.remove()
        delete tiles[name]
      }
    })
    byId("no-dependencies").hidden = status.dependencies.length > 0
    previous = status
  }

  var onChange = function (change) {
    if (!change || typeof change !== "object") return
    var at = typeof change.at === "number" ? change.at : Date.now()
    if (change._tag === "SystemHealthChanged") {
      addTransition({ at: at, dependency: null, subject: "system", from: String(change.from), to: String(change.to) })
    } else if (change._tag === "BreakerStateChanged") {
      noteBreakerState(String(change.breaker), String(change.to), at, change.reason ? String(change.reason) : null)
    } else if (change._tag === "DependencyStateChanged") {
      addTransition({ at: at, dependency: String(change.name), subject: String(change.name), from: String(change.from),
        to: String(change.to) })
    }
  }

  // ---------------------------------------------------------------------------
  // data: one fetch at start and a slow poll (calls/s needs fresh totals), live changes over SSE
  // ---------------------------------------------------------------------------
  var lastStatusAt = 0
  var accept = function (status) {
    lastStatusAt = Date.now()
    renderStatus(status)
    // A failed read said so; a good one puts back the stream's own state.
    if (byId("connection").getAttribute("data-connection") === "error") {
      if (source && source.readyState === 1) setConnection("live", "Live")
      else setConnection("reconnecting", "Reconnecting")
    }
  }
  var refresh = function () {
    return fetch(base + "/health/resilience", { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status)
        return response.json()
      })
      .then(accept, function (error) {
        setConnection("error", "Cannot read the health snapshot (" + (error && error.message ? error.message : error) +
          ").")
      })
  }

  var setConnection = function (state, text) {
    var node = byId("connection")
    node.setAttribute("data-connection", state)
    node.textContent = text
  }

  var source = null
  var retryMs = 1000
  var connect = function () {
    if (typeof EventSource === "undefined") {
      setConnection("polling", "Polling (no live stream in this browser)")
      return
    }
    source = new EventSource(base + "/health/stream")
    source.addEventListener("open", function () {
      retryMs = 1000
      setConnection("live", "Live")
    })
    source.addEventListener("status", function (event) {
      try { accept(JSON.parse(event.data)) } catch (e) { /* a malformed event is skipped */ }
    })
    source.addEventListener("change", function (event) {
      try { onChange(JSON.parse(event.data)) } catch (e) { /* a malformed event is skipped */ }
    })
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. a non-200 answer): reconnect with a growing delay.
        setConnection("reconnecting", "Reconnecting in " + Math.round(retryMs / 1000) + " s")
        source.close()
        setTimeout(connect, retryMs)
        retryMs = Math.min(retryMs * 2, 30000)
      } else {
        setConnection("reconnecting", "Reconnecting")
      }
    })
  }

  // ---------------------------------------------------------------------------
  // wiring
  // ---------------------------------------------------------------------------
  byId("admin-form").addEventListener("submit", function (event) {
    event.preventDefault()
    var value = byId("admin-token").value.trim()
    try {
      if (value === "") sessionStorage.removeItem(TOKEN_KEY)
      else sessionStorage.setItem(TOKEN_KEY, value)
    } catch (e) { /* storage may be off: the controls stay hidden */ }
    byId("admin-token").value = ""
    showMessage("info", "")
    applyAdminVisibility()
  })
  byId("admin-token-forget").addEventListener("click", function () {
    try { sessionStorage.removeItem(TOKEN_KEY) } catch (e) { /* nothing kept */ }
    showMessage("info", "")
    applyAdminVisibility()
  })
  byId("force-recovery").addEventListener("click", function () {
    admin("/admin/resilience/force-recovery", "Force recovery")
  })

  applyAdminVisibility()
  renderTransitions()
  refresh()
  connect()
  setInterval(function () {
    if (Date.now() - lastStatusAt >= POLL_MS - 100) refresh()
  }, POLL_MS)
})()
`

/** @internal */
export const dashboardPage = (options: { readonly basePath: string }): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'">
<title>Resilience dashboard</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body data-base-path="${escapeAttribute(options.basePath)}" data-admin="off">
<header>
  <h1>Resilience dashboard</h1>
  <span id="connection" class="connection" data-connection="connecting" role="status" aria-live="polite">\
Connecting</span>
</header>
<main>
  <section id="system" class="banner" data-health="unknown" aria-label="System health">
    <span>System health <strong id="system-health">unknown</strong></span>
    <span>Service level <strong id="service-level">unknown</strong></span>
    <span>Operational <span id="operational">n/a</span></span>
    <span>Read-only <span id="read-only">n/a</span></span>
    <span>Updated <time id="updated">never</time></span>
  </section>

  <form id="admin-form" class="admin" autocomplete="off">
    <label for="admin-token">Admin token</label>
    <input id="admin-token" name="admin-token" type="password" autocomplete="off" spellcheck="false">
    <button id="admin-token-save" type="submit" class="primary">Use token</button>
    <button id="admin-token-forget" type="button" hidden>Forget token</button>
    <button id="force-recovery" type="button" data-admin-control hidden>Force recovery</button>
    <span id="admin-state" class="meta"></span>
  </form>
  <p id="admin-message" class="message" role="alert" data-kind="info"></p>

  <h2>Dependencies</h2>
  <p id="no-dependencies" class="empty">No dependency is registered.</p>
  <div id="tiles" class="tiles"></div>

  <h2>Recent transitions</h2>
  <ol id="transitions" class="transitions"></ol>
  <p id="announcer" class="visually-hidden" role="status" aria-live="polite"></p>
</main>
<footer>Live from the health stream; figures refresh on every change and every few seconds.</footer>
<script>${script}</script>
</body>
</html>
`
