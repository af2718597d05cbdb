/**
 * What the examples print with: colours (only on a terminal, never with NO_COLOR) and
 * figures in readable units.
 */
const color = process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined
const paint = (code: string) => (text: string): string => color ? `\u001b[${code}m${text}\u001b[0m` : text

export const bold = paint("1")
export const dim = paint("2")
export const green = paint("32")
export const red = paint("31")
export const yellow = paint("33")
export const cyan = paint("36")

export const seconds = (millis: number, digits = 2): string => `${(millis / 1000).toFixed(digits)} s`
export const ms = (millis: number): string => `${millis < 10 ? millis.toFixed(1) : Math.round(millis)} ms`
export const percent = (fraction: number): string => `${(fraction * 100).toFixed(1)}%`
