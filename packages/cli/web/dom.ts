/** Small DOM helpers. What comes from a run is only ever set as text, never parsed as markup. */

export const byId = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`the page has no #${id}`)
  return element as T
}

type Attributes = Readonly<Record<string, string | number | boolean | undefined>>

/** An HTML element with attributes and children (strings become text nodes). */
export const h = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: ReadonlyArray<Node | string | undefined>
): HTMLElementTagNameMap[K] => {
  const element = document.createElement(tag)
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue
    element.setAttribute(key, value === true ? "" : String(value))
  }
  for (const child of children) if (child !== undefined) element.append(child)
  return element
}

const SVG = "http://www.w3.org/2000/svg"

/** An SVG element with attributes and children. */
export const s = (tag: string, attributes: Attributes = {}, ...children: ReadonlyArray<Node | string>): SVGElement => {
  const element = document.createElementNS(SVG, tag)
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) element.setAttribute(key, String(value))
  for (const child of children) element.append(child)
  return element
}

/** Replace an element's children. */
export const fill = (element: Element, ...children: ReadonlyArray<Node | string>) => element.replaceChildren(...children)

export const money = (cost: number): string => `$${cost.toFixed(4)}`

export const count = (n: number): string =>
  n < 1000 ? String(n) : n < 1_000_000 ? `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k` : `${(n / 1_000_000).toFixed(1)}M`

export const clock = (ts: string): string => new Date(ts).toLocaleTimeString([], { hour12: false })

/** `45s`, `3m05s`, `1h02m`. */
export const duration = (ms: number): string => {
  const seconds = Math.max(0, Math.round(ms / 1000))
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`
}
