/**
 * Tells a GSI deleted from one this node's map view does not show yet. Exact where it can be:
 * - a GSI the view showed at some map version since this node started and no longer shows was
 *   `deleted` (a map only grows newer and space ids are never reused);
 * - so was one whose creation map version is known (a backfill command carries it: the router's first
 *   map showing the index, at or after the one that created it) once the view is at or past that
 *   version and does not show it, whether or not the view ever showed it.
 * Otherwise (no version known: a GSI created with its table, records of a write made with a schema
 * newer than the view, commands of older routers) it is only `presumedDeleted` once it has been
 * unknown for `graceMs` over at least one newer map, so a view frozen that long (meta unreachable)
 * deletes nothing. The index shipper drops the records of both; the backfill driver ends a walk only
 * on `deleted` (a view that missed the GSI's creation would end a live backfill on a presumption, and
 * the GSI would turn ACTIVE without the rest of the walk).
 */
import type { ClusterView } from '../cluster/cluster-view.ts';

export interface DeletedIndexesOptions {
  view: Pick<ClusterView, 'gsiOf' | 'partitions' | 'version'>;
  /** How long an index never shown stays unknown before it counts as deleted (default 30 s). */
  graceMs?: number;
  now?(): number;
}

const DEFAULT_GRACE_MS = 30_000;

export class DeletedIndexes {
  readonly #options: DeletedIndexesOptions;
  /** GSIs the view showed (with partitions) at some map version. */
  readonly #seen = new Set<number>();
  /** GSIs asked about that the view did not show: since when, at which map version. */
  readonly #unknown = new Map<number, { since: number; version: number }>();
  #version = -1;

  constructor(options: DeletedIndexesOptions) {
    this.#options = options;
  }

  /**
   * `shown` (in the view), `deleted`, `presumedDeleted`, or `unknown` (not shown yet: wait for the
   * map). `createdAtMapVersion`: a map version at or after the index's creation, when known (no
   * presumption then: the view reaches it).
   */
  status(indexId: number, createdAtMapVersion?: number): 'shown' | 'deleted' | 'presumedDeleted' | 'unknown' {
    const { view } = this.#options;
    this.#noteView();
    if (view.gsiOf(indexId) !== undefined) {
      this.#unknown.delete(indexId);
      this.#seen.add(indexId);
      return 'shown';
    }
    if (this.#seen.has(indexId)) return 'deleted';
    // Below 1 it names no map (none is older than version 1): unknown, as for no version.
    if (createdAtMapVersion !== undefined && createdAtMapVersion >= 1) {
      this.#unknown.delete(indexId);
      return view.version >= createdAtMapVersion ? 'deleted' : 'unknown';
    }
    const now = (this.#options.now ?? Date.now)();
    const unknown = this.#unknown.get(indexId);
    if (unknown === undefined) {
      this.#unknown.set(indexId, { since: now, version: view.version });
      return 'unknown';
    }
    return now - unknown.since >= (this.#options.graceMs ?? DEFAULT_GRACE_MS) && view.version > unknown.version ? 'presumedDeleted' : 'unknown';
  }

  /** The GSIs each new map version shows with partitions count as seen, asked about or not. */
  #noteView(): void {
    const { view } = this.#options;
    if (view.version === this.#version) return;
    this.#version = view.version;
    for (const partition of view.partitions()) if (view.gsiOf(partition.tableId) !== undefined) this.#seen.add(partition.tableId);
  }
}
