// The work queue, after client-go's: a key queued many times runs once, a key
// is never handed to two workers at once (re-adds while it runs are held and
// queued again when it is done). Retries are rate limited as client-go's
// DefaultControllerRateLimiter does it: the longer of a per-key exponential
// backoff and an overall token bucket (10 retries/s, bursts of 100), so a
// thousand keys failing at once do not hammer the API server.
// Metrics (depth, adds, retries, time queued) are updated at every add, get
// and done, not sampled.
export interface QueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Overall retry rate (tokens per second) and burst (bucket size). */
  retryQps?: number;
  retryBurst?: number;
  metrics?: QueueMetrics;
  /** Injected clock (ms), for tests of the bucket. */
  now?: () => number;
}

/** What the queue reports; prom-client's Gauge/Counter/Histogram fit. */
export interface QueueMetrics {
  depth: { set(value: number): void };
  adds: { inc(): void };
  retries: { inc(): void };
  /** Seconds a key waited in the queue before a worker took it. */
  queueDuration: { observe(seconds: number): void };
}

/** golang.org/x/time/rate's Reserve: tokens may go negative; the deficit is the wait. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly qps: number;
  private readonly burst: number;
  private readonly now: () => number;

  constructor(qps: number, burst: number, now: () => number = () => performance.now()) {
    this.qps = qps;
    this.burst = burst;
    this.now = now;
    this.tokens = burst;
    this.last = now();
  }

  /** Takes one token; returns how long (ms) the caller must wait for it. */
  reserve(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000);
  }
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  /** When each queued key was added (for the queue-duration histogram). */
  private readonly addedAt = new Map<string, number>();
  /** Delayed adds, one per key: the sooner one wins. */
  private readonly delayed = new Map<string, { timer: NodeJS.Timeout; dueAt: number }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly bucket: TokenBucket;
  private readonly metrics: QueueMetrics | undefined;
  private readonly now: () => number;

  constructor(options: QueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 300_000;
    this.now = options.now ?? (() => performance.now());
    this.bucket = new TokenBucket(options.retryQps ?? 10, options.retryBurst ?? 100, this.now);
    this.metrics = options.metrics;
    this.metrics?.depth.set(0);
  }

  get length(): number {
    return this.queue.length;
  }

  private depthChanged(): void {
    this.metrics?.depth.set(this.queue.length);
  }

  /** A waiting worker gets the key at once; otherwise it joins the queue. */
  private enqueue(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      this.handOut(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.depthChanged();
  }

  private handOut(key: string): void {
    this.dirty.delete(key);
    this.processing.add(key);
    const since = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (since !== undefined) this.metrics?.queueDuration.observe((this.now() - since) / 1000);
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.adds.inc();
    this.dirty.add(key);
    this.addedAt.set(key, this.now());
    if (this.processing.has(key)) return;
    this.enqueue(key);
  }

  /** Adds the key after a delay; a later, sooner request wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const dueAt = this.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing !== undefined) {
      if (existing.dueAt <= dueAt) return;
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { timer, dueAt });
  }

  /** Re-queues a failed key: the longer of its own backoff and the overall bucket's wait. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.metrics?.retries.inc();
    const delay = Math.max(
      Math.min(this.baseDelayMs * 2 ** n, this.maxDelayMs),
      this.bucket.reserve(),
    );
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count after a success. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Resolves with the next key, or undefined once shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.handOut(key);
      this.depthChanged();
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (!this.dirty.has(key)) return;
    // Re-added while it ran: queue it now (it was counted as an add then).
    this.enqueue(key);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }
}
