/**
 * The health rules as pure functions: the state of the system from the states of its
 * dependencies, and the default service level of each state.
 *
 * @internal
 */

/** @internal */
export type DependencyState = "Operational" | "Degraded" | "Down"

/** @internal */
export type SystemHealth = "Healthy" | "Degraded" | "Critical" | "Emergency"

/** @internal */
export type ServiceLevel = "Full" | "Degraded" | "Limited" | "CacheOnly"

/** @internal */
export interface RatedDependency {
  readonly critical: boolean
  readonly state: DependencyState
  /** A `Down` dependency whose own fallback answers for it (a database in read-only mode). */
  readonly fallbackActive?: boolean | undefined
}

/** @internal */
export const systemHealthOrder: ReadonlyArray<SystemHealth> = ["Healthy", "Degraded", "Critical", "Emergency"]

/** @internal */
export const serviceLevelOrder: ReadonlyArray<ServiceLevel> = ["Full", "Degraded", "Limited", "CacheOnly"]

/**
 * The share of dependencies that answer (`Operational` or `Degraded`: a dependency whose
 * fallback answers for it still answers); 1 with no dependency.
 *
 * @internal
 */
export const operationalShare = (dependencies: ReadonlyArray<RatedDependency>): number => {
  if (dependencies.length === 0) return 1
  let up = 0
  for (const dependency of dependencies) {
    if (dependency.state !== "Down") up++
  }
  return up / dependencies.length
}

/**
 * The seed rules, the worst that applies winning:
 * - Emergency: two or more critical dependencies down;
 * - Critical: one critical dependency down, or less than 50% operational;
 * - Degraded: less than 80% operational (50% included), or any fallback active;
 * - Healthy: 80% to 100% operational and no fallback active.
 *
 * @internal
 */
export const systemHealth = (dependencies: ReadonlyArray<RatedDependency>): SystemHealth => {
  let criticalDown = 0
  let fallbackActive = false
  let up = 0
  for (const dependency of dependencies) {
    if (dependency.state === "Down") {
      if (dependency.critical) criticalDown++
      if (dependency.fallbackActive === true) fallbackActive = true
    } else {
      up++
      if (dependency.state === "Degraded") fallbackActive = true
    }
  }
  if (criticalDown >= 2) return "Emergency"
  // Compared in whole counts (up * 100 against total * 50) so that 4 of 5 is exactly 80%.
  const total = dependencies.length
  if (criticalDown === 1 || up * 100 < total * 50) return "Critical"
  if (up * 100 < total * 80 || fallbackActive) return "Degraded"
  return "Healthy"
}

/**
 * The default service level of each system health: Healthy → Full, Degraded → Degraded,
 * Critical → Limited, Emergency → CacheOnly.
 *
 * @internal
 */
export const defaultServiceLevel = (health: SystemHealth): ServiceLevel => {
  switch (health) {
    case "Healthy":
      return "Full"
    case "Degraded":
      return "Degraded"
    case "Critical":
      return "Limited"
    case "Emergency":
      return "CacheOnly"
  }
}

/**
 * Whether `current` is `required` or better (`Full` is the best level).
 *
 * @internal
 */
export const isAtLeast = (current: ServiceLevel, required: ServiceLevel): boolean =>
  serviceLevelOrder.indexOf(current) <= serviceLevelOrder.indexOf(required)

/**
 * The gauge value of a system health: 0 Healthy, 1 Degraded, 2 Critical, 3 Emergency.
 *
 * @internal
 */
export const healthValue = (health: SystemHealth): number => systemHealthOrder.indexOf(health)
