// Kysely statements built and compiled once per database (dialect), then run with new values: a hot path pays
// for binding its values, not for building and compiling the same query object on every request.
import { type Compilable, CompiledQuery, type Kysely } from 'kysely';

/** Stands in for a value when the statement is compiled; replaced by the value of its name on each run. */
class Slot {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

/** A placeholder for the value named `name` (typed as whatever the column wants). */
export type SlotOf = (name: string) => never;

/**
 * One statement shape, compiled on first use per Kysely dialect. `build` gets `slot` for each varying value and
 * must build the same query every time (only the values change); anything that changes the text needs its own
 * Statement.
 */
export class Statement<DB, R = unknown> {
  readonly #build: (db: Kysely<DB>, slot: SlotOf) => Compilable<R>;
  // Per dialect (SQLite and MySQL quote and number placeholders differently), keyed by the executor's adapter.
  readonly #compiled = new WeakMap<object, CompiledQuery<R>>();

  constructor(build: (db: Kysely<DB>, slot: SlotOf) => Compilable<R>) {
    this.#build = build;
  }

  /** The statement compiled for `db` with `values` bound in their slots. */
  bind(db: Kysely<DB>, values: Readonly<Record<string, unknown>>): CompiledQuery<R> {
    const adapter = db.getExecutor().adapter;
    let template = this.#compiled.get(adapter);
    if (!template) {
      template = this.#build(db, (name) => new Slot(name) as never).compile();
      this.#compiled.set(adapter, template);
    }
    const parameters = template.parameters.map((parameter) => {
      if (!(parameter instanceof Slot)) return parameter;
      if (!(parameter.name in values)) throw new Error(`no value for ${parameter.name}`);
      return values[parameter.name];
    });
    return CompiledQuery.raw(template.sql, parameters) as CompiledQuery<R>;
  }

  /** Runs it on `db` (a Kysely or a transaction of one). */
  execute(db: Kysely<DB>, values: Readonly<Record<string, unknown>>) {
    return db.executeQuery(this.bind(db, values));
  }
}
