// Label-name layouts: the parser interns each layout it meets, so every series
// of the same layout shares one Shape object, and stages can key their caches
// by it (relabel templates, aggregation).
import { detach } from "./detach.ts";

/** One label-name layout, in exposition order. Interned per pipeline (ShapeTable). */
export class Shape {
  readonly names: readonly string[];
  constructor(names: readonly string[]) {
    this.names = names;
  }

  indexOf(name: string): number {
    return this.names.indexOf(name);
  }
}

/** Bound on interned shapes; the table starts over when it fills. */
const SHAPE_LIMIT = 4096;

/** Interns label-name layouts so equal layouts are one object. */
export class ShapeTable {
  readonly #shapes = new Map<string, Shape>();
  readonly empty: Shape;

  constructor() {
    this.empty = this.intern([]);
  }

  /** The shape with these names (detached from any payload). */
  intern(names: string[]): Shape {
    // Length-prefixed: UTF-8 label names may hold any character, "" included.
    let key = "";
    for (const n of names) key += `${n.length}:${n}`;
    let sh = this.#shapes.get(key);
    if (sh !== undefined) return sh;
    if (this.#shapes.size >= SHAPE_LIMIT) this.#shapes.clear();
    sh = new Shape(names.map(detach));
    this.#shapes.set(key, sh);
    return sh;
  }
}
