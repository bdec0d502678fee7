/**
 * Boundary Realtime client (the protocol of docs/protocol.md).
 *
 * This module imports nothing: the server embeds the compiled file and serves it to browsers
 * as `/realtime-client.js`, where a relative or bare import would not resolve.
 *
 * Delivery guarantees, as the client sees them:
 * - A command (publish, ping, unsubscribe) is sent at most once. One issued while there is no
 *   connection waits in a bounded queue (`maxQueuedCommands`) and is sent after the next
 *   `connected` frame; one already sent when the connection drops rejects with `disconnected`,
 *   because the server may or may not have carried it out.
 * - Subscriptions are state, not commands: every one is sent again after each reconnect, before
 *   the queued commands, so a queued publish reaches a topic the client listens to.
 * - Messages published while the client is disconnected are not replayed (the server keeps no
 *   history).
 * - A member list (`subscribe(topic, handler, { presence: true })`, a topic with `--presence` on
 *   the server) is listed after every `subscribed` reply, then kept by the join and leave events
 *   that follow the listing; it is dropped while the topic is not subscribed.
 */

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** A server → client message: a JSON object with a string `type` (docs/protocol.md). */
export interface ServerMessage {
  type: string;
  topic?: string;
  timestamp?: string;
  ref?: string | number;
  [key: string]: unknown;
}

export interface ConnectedInfo {
  connectionId: string;
  userId: string;
  roles: string[];
}

export interface DisconnectedInfo {
  /** WebSocket close code: 1001 when the server shuts down, 1006 when the connection was lost. */
  code: number;
  reason: string;
  /** False after `disconnect()` or when reconnection is turned off. */
  willReconnect: boolean;
}

/**
 * Where the client is in a topic's history (a topic the server runs with `--history`): the
 * stream's epoch and the offset of the last message handed to the topic's handlers.
 */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/**
 * The outcome of resubscribing to a topic with history after a reconnect. `recovered: true`:
 * every message missed meanwhile was replayed (`replayed` of them, reported once the last one was
 * handed to the handlers). `recovered: false`: the gap could not be filled (the server restarted,
 * or the missed messages are no longer kept): reload the topic's state from your application.
 */
export interface RecoveryInfo {
  topic: string;
  recovered: boolean;
  replayed: number;
}

/** A user present on a topic, as the `presence` action lists them. */
export interface PresenceUser {
  userId: string;
  /** How many of the user's connections are subscribed to the topic, when it was listed. */
  connections: number;
  /** The `info` claim of the token that made the user present (`{}` without one). */
  info: Record<string, unknown>;
}

/** The answer to `presence(topic)`. */
export interface PresenceListing {
  topic: string;
  users: PresenceUser[];
  /** More users are present than the server lists (`--presence-max-users`). */
  truncated: boolean;
}

/**
 * A member of a topic's member list. Join and leave events carry no connection count, so the
 * kept list has none: ask `presence(topic)` for it.
 */
export interface PresenceMember {
  userId: string;
  info: Record<string, unknown>;
}

/** A topic's member list, as the client keeps it (see `members(topic)`). */
export interface PresenceMembers {
  topic: string;
  /** In the order of the listing, then of the joins since. */
  users: PresenceMember[];
  /**
   * The listing had more users than the server lists: `users` holds the listed ones and those who
   * joined since (minus those who left), not everyone present.
   */
  truncated: boolean;
}

/** The `members` event: a topic's member list changed. */
export interface MembersChange extends PresenceMembers {
  /**
   * `listed`: the list was (re)built from a listing, after a subscribe or a reconnect. `join`,
   * `leave`: `user` arrived or left. `dropped`: the list is gone (unsubscribed, presence no longer
   * asked for, or the connection closed; `users` is empty). `failed`: the listing was refused
   * (`error`: `bad-request` for a topic without presence, `forbidden`, `timeout`); there is no
   * list until the next subscribe.
   */
  reason: "listed" | "join" | "leave" | "dropped" | "failed";
  user?: PresenceMember;
  error?: RealtimeError;
}

/** Events the client emits itself; every other event name is a server message `type`. */
export interface LifecycleEvents {
  connected: ConnectedInfo;
  disconnected: DisconnectedInfo;
  error: Error;
  state: ConnectionState;
  recovery: RecoveryInfo;
  members: MembersChange;
}

/** `{"type":"presence-join"}`: a user's first connection subscribed to a topic with presence. */
export interface PresenceJoinMessage extends ServerMessage {
  type: "presence-join";
  topic: string;
  "user-id": string;
  info: Record<string, unknown>;
}

/** `{"type":"presence-leave"}`: a user's last connection left a topic with presence. */
export interface PresenceLeaveMessage extends ServerMessage {
  type: "presence-leave";
  topic: string;
  "user-id": string;
}

/** Server messages with a known shape, for typed `on(...)` handlers. */
export interface PresenceEvents {
  "presence-join": PresenceJoinMessage;
  "presence-leave": PresenceLeaveMessage;
}

export interface SubscribeOptions {
  /**
   * Keep the topic's member list (a topic with `--presence` on the server): see `members(topic)`
   * and the `members` event. Default false.
   */
  presence?: boolean;
}

/**
 * A handler for server messages. `T` is the message shape you expect (default `ServerMessage`);
 * the client does not check it: it is a type assertion on the server's JSON, as with `JSON.parse`.
 */
export type MessageHandler<T = ServerMessage> = (message: T) => void;

export interface ReconnectOptions {
  /** Ceiling of the first delay (default 500 ms). */
  initialDelayMs?: number;
  /** Largest ceiling, however many attempts failed (default 30 000 ms). */
  maxDelayMs?: number;
  /** Growth of the ceiling per failed attempt (default 2). */
  factor?: number;
}

/** The part of the WebSocket API the client uses; browsers' WebSocket and the `ws` package fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface RealtimeClientOptions {
  /** A fixed JWT. Ignored when `getToken` is given. */
  token?: string;
  /**
   * Called before every connect and reconnect, so an expired token can be replaced, and ahead of
   * the current token's `exp` to refresh the open connection (see `refreshAhead`).
   */
  getToken?: () => string | Promise<string>;
  /**
   * Refresh the open connection's token before its `exp` (read from the JWT payload, not
   * verified): `getToken()` is called and its token sent as a `refresh` command, 30 s or 10% of
   * the token's lifetime before `exp`, whichever is sooner to `exp`. Needs `getToken`; default
   * true. Without it the server closes the connection with 4001 at `exp` and the client
   * reconnects with a token from `getToken`.
   */
  refreshAhead?: boolean;
  /**
   * WebSocket implementation (default `globalThis.WebSocket`). Node 20 has none: pass the `ws`
   * package (`import WebSocket from "ws"` → `{ WebSocket }`), or `connect()` fails with `no-websocket`.
   */
  WebSocket?: WebSocketConstructor;
  /** Backoff for reconnection, or `false` to never reconnect by itself. */
  reconnect?: ReconnectOptions | false;
  /** After a `server-shutdown` message, wait at least this long before reconnecting (default 2000 ms). */
  shutdownReconnectDelayMs?: number;
  /** How long a command waits for its reply once sent (default 10 000 ms). */
  requestTimeoutMs?: number;
  /** Commands kept while disconnected; beyond this they reject with `queue-full` (default 100). */
  maxQueuedCommands?: number;
  /** Source of randomness for the backoff jitter, in [0, 1) (default `Math.random`; for tests). */
  random?: () => number;
}

/**
 * A refused or failed operation. `code` is the server's error code (`bad-request`,
 * `invalid-topic`, `forbidden`, `rate-limited`, `too-many-subscriptions`) or one of the client's:
 * `timeout`, `disconnected`, `queue-full`, `unsubscribed`, `connect-failed`, `token-failed`,
 * `bad-message`, `handler-error`, `no-websocket`.
 */
export class RealtimeError extends Error {
  readonly code: string;
  /** The topic, for errors about a subscription. */
  readonly topic?: string;
  /** The HTTP status of a refused upgrade (e.g. 401), when the WebSocket implementation reports it (`ws` does, browsers do not). */
  readonly status?: number;

  constructor(code: string, message: string, options: { topic?: string; status?: number; cause?: unknown } = {}) {
    super(message);
    this.name = "RealtimeError";
    this.code = code;
    if (options.topic !== undefined) this.topic = options.topic;
    if (options.status !== undefined) this.status = options.status;
    if (options.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

export interface Subscription {
  readonly topic: string;
  /** Resolves once the server confirmed the subscription; rejects with a `RealtimeError` if it refused. */
  readonly ready: Promise<void>;
  /** Removes this handler; the server subscription ends with the topic's last handler. */
  unsubscribe(): Promise<void>;
}

const DEFAULT_RECONNECT: Required<ReconnectOptions> = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
};

/**
 * Delay before reconnect attempt number `attempt` (0 for the first retry): "full jitter",
 * uniformly random in [0, min(maxDelayMs, initialDelayMs * factor^attempt)], so that clients
 * dropped together by a restart do not come back together.
 */
export function backoffDelay(
  attempt: number,
  options: ReconnectOptions = {},
  random: () => number = Math.random,
): number {
  const initial = Math.max(0, options.initialDelayMs ?? DEFAULT_RECONNECT.initialDelayMs);
  const max = Math.max(0, options.maxDelayMs ?? DEFAULT_RECONNECT.maxDelayMs);
  const factor = Math.max(1, options.factor ?? DEFAULT_RECONNECT.factor);
  let ceiling = initial * Math.pow(factor, Math.max(0, attempt));
  if (!Number.isFinite(ceiling) || ceiling > max) ceiling = max;
  const r = Math.min(Math.max(Number(random()) || 0, 0), 1);
  return Math.floor(r * ceiling);
}

/**
 * The `exp` claim (seconds since the epoch) of a JWT, read without verifying it; undefined when
 * the token has none or is not a JWT.
 */
export function tokenExpiry(token: string | undefined): number | undefined {
  const payload = token?.split(".")[1];
  if (!payload) return undefined;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims?.exp === "number" && Number.isFinite(claims.exp) ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Milliseconds from `nowMs` until a token obtained at `obtainedAtMs` and expiring at `expSeconds`
 * should be refreshed: 30 s or 10% of its lifetime before `exp`, whichever is smaller (0: now).
 */
export function refreshDelay(expSeconds: number, obtainedAtMs: number, nowMs: number = Date.now()): number {
  const expMs = expSeconds * 1000;
  const lead = Math.min(30_000, Math.max(0, expMs - obtainedAtMs) * 0.1);
  return Math.max(0, expMs - lead - nowMs);
}

/** Appends the token as the `token` query parameter (docs/protocol.md). */
export function urlWithToken(url: string, token: string | undefined): string {
  if (token === undefined || token === "") return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

interface Request {
  ref: string;
  frame: Record<string, unknown>;
  /** Reply `type` that settles this request (an `error` with the same ref rejects it). */
  expect: string;
  resolve(reply: ServerMessage): void;
  reject(error: RealtimeError): void;
  timer?: ReturnType<typeof setTimeout>;
}

interface TopicEntry {
  topic: string;
  handlers: Set<{ handler: MessageHandler; presence: boolean }>;
  /** The server confirmed it at least once since the last `disconnect()`. */
  confirmed: boolean;
  ready: Promise<void>;
  settleReady(error?: RealtimeError): void;
  /** Ref of the subscribe command in flight on the current connection. */
  pendingRef?: string;
  /** A topic with history: its epoch and the offset of the last message handed to the handlers. */
  position?: StreamPosition;
  /** Offsets went back outside a replay: the stream restarted, its epoch is unknown. */
  positionLost?: boolean;
  /** A recovery in progress: the last offset of the replay, and the messages replayed so far. */
  replayThrough?: number;
  replayed?: number;
  /** Ref of the presence listing in flight on the current connection. */
  presenceRef?: string;
  /** The member list, once listed on the current connection; events before that are not applied. */
  members?: Map<string, PresenceMember>;
  truncated?: boolean;
}

// Replies to commands; never handed to topic handlers even though they carry `topic`.
const REPLY_TYPES = new Set(["subscribed", "unsubscribed", "published", "pong", "presence"]);
const OPEN = 1;
const noop = () => {};

type AnyHandler = (payload: any) => void;

export class RealtimeClient {
  readonly url: string;
  private readonly options: RealtimeClientOptions;
  private readonly requestTimeoutMs: number;
  private readonly maxQueuedCommands: number;
  private readonly shutdownReconnectDelayMs: number;

  private stateValue: ConnectionState = "idle";
  private connectionIdValue: string | null = null;
  private userIdValue: string | null = null;
  private rolesValue: string[] = [];

  private ws: WebSocketLike | null = null;
  /** Bumped by connect() from idle/closed and by disconnect(); stale async steps compare it. */
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  /** The token of the current connection (the one sent on connect or by the last refresh). */
  private tokenValue: string | undefined;
  private tokenObtainedAt = 0;
  private shutdownAnnounced = false;
  private nextRef = 0;

  private readonly listeners = new Map<string, Set<AnyHandler>>();
  private readonly topics = new Map<string, TopicEntry>();
  private readonly queue: Request[] = [];
  private readonly inflight = new Map<string, Request>();
  private connectWaiters: Array<{ resolve(): void; reject(error: RealtimeError): void }> = [];

  constructor(url: string, options: RealtimeClientOptions = {}) {
    this.url = url;
    this.options = options;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.maxQueuedCommands = Math.max(0, options.maxQueuedCommands ?? 100);
    this.shutdownReconnectDelayMs = Math.max(0, options.shutdownReconnectDelayMs ?? 2_000);
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Set by the `connected` frame; null while not connected. */
  get connectionId(): string | null {
    return this.connectionIdValue;
  }

  get userId(): string | null {
    return this.userIdValue;
  }

  get roles(): readonly string[] {
    return this.rolesValue;
  }

  /**
   * Opens the connection. Resolves when the server's `connected` frame arrives. With reconnection
   * on (the default), failed attempts are retried with backoff and reported as `error` events,
   * and the promise waits for the first success; it rejects with `disconnected` if
   * `disconnect()` is called first, or with `connect-failed` when reconnection is off.
   */
  connect(): Promise<void> {
    if (this.stateValue === "connected") return Promise.resolve();
    if (!this.webSocketConstructor()) {
      // A setup mistake, not a network failure: retrying cannot fix it, so fail at once and loudly.
      const error = new RealtimeError(
        "no-websocket",
        "no WebSocket implementation: this runtime has no global WebSocket (Node 20 and older). " +
          'Install the `ws` package and pass it: new RealtimeClient(url, { WebSocket }) after `import WebSocket from "ws"`',
      );
      this.emitError(error);
      return Promise.reject(error);
    }
    const done = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    done.catch(noop); // callers that ignore the promise (`client.connect();`) get no unhandled rejection
    if (this.stateValue === "idle" || this.stateValue === "closed") {
      this.generation += 1;
      this.attempt = 0;
      this.setState("connecting");
      void this.openSocket(this.generation);
    } else if (this.reconnectTimer !== null) {
      // Waiting out a backoff: an explicit connect() tries now.
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      void this.openSocket(this.generation);
    }
    return done;
  }

  /**
   * Closes the connection with 1000 and stops reconnecting until `connect()` is called again.
   * Requests in flight or queued reject with `disconnected`. Subscriptions stay registered and
   * are sent again by a later `connect()`.
   */
  disconnect(): void {
    this.generation += 1;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const wasConnected = this.stateValue === "connected";
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000, "client disconnect");
      } catch {
        // already closing
      }
    }
    this.clearConnection();
    const error = () => new RealtimeError("disconnected", "the client was disconnected");
    this.failRequests(error);
    this.failQueue(error);
    this.failConnectWaiters(error());
    for (const entry of this.topics.values()) {
      if (!entry.confirmed) entry.settleReady(error());
    }
    this.setState("closed");
    if (wasConnected) {
      this.emit("disconnected", { code: 1000, reason: "client disconnect", willReconnect: false });
    }
  }

  /**
   * Adds a handler for a lifecycle event (`connected`, `disconnected`, `error`, `state`), for
   * server messages of the given `type`, or for every server message (`"*"`). Returns a
   * function that removes it.
   */
  on<K extends keyof LifecycleEvents>(event: K, handler: (payload: LifecycleEvents[K]) => void): () => void;
  on<K extends keyof PresenceEvents>(event: K, handler: (message: PresenceEvents[K]) => void): () => void;
  on<T = ServerMessage>(event: string, handler: MessageHandler<T>): () => void;
  on(event: string, handler: AnyHandler): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    // A wrapper per call, so that adding one function twice needs two removals.
    const entry: AnyHandler = (payload) => handler(payload);
    set.add(entry);
    return () => {
      const current = this.listeners.get(event);
      if (!current) return;
      current.delete(entry);
      if (current.size === 0) this.listeners.delete(event);
    };
  }

  /**
   * The position in `topic`'s history (a topic with `--history` on the server), or undefined
   * when the client holds none: not subscribed, no history, or the stream restarted unseen.
   */
  position(topic: string): StreamPosition | undefined {
    const entry = this.topics.get(topic);
    return entry?.position && !entry.positionLost ? { ...entry.position } : undefined;
  }

  /**
   * The member list of a subscribed topic whose presence the client keeps
   * (`subscribe(topic, handler, { presence: true })`), or undefined while it holds none: not
   * asked for, not listed yet on this connection, disconnected, or the listing was refused.
   */
  members(topic: string): PresenceMembers | undefined {
    const entry = this.topics.get(topic);
    if (!entry?.members) return undefined;
    return { topic, users: [...entry.members.values()], truncated: entry.truncated === true };
  }

  /**
   * Receives every message whose `topic` equals `topic`. Handlers on one topic share one server
   * subscription, which is sent again after every reconnect; on a topic with history it asks for
   * what was missed meanwhile (`recovery` event). With `{ presence: true }` the client also keeps
   * the topic's member list (`members(topic)`, `members` event).
   */
  subscribe<T = ServerMessage>(topic: string, handler: MessageHandler<T>, options: SubscribeOptions = {}): Subscription {
    let entry = this.topics.get(topic);
    const isNew = !entry;
    if (!entry) {
      entry = this.newTopicEntry(topic);
      this.topics.set(topic, entry);
    }
    const wanted = this.presenceWanted(entry);
    const registration = { handler: handler as MessageHandler, presence: options.presence === true };
    entry.handlers.add(registration);
    if (isNew && this.stateValue === "connected") this.sendSubscribe(entry);
    else if (registration.presence && !wanted && entry.confirmed && entry.pendingRef === undefined && this.stateValue === "connected") {
      this.listPresence(entry); // already subscribed on this connection: list now
    }
    const owner = entry;
    let active = true;
    return {
      topic,
      ready: owner.ready,
      unsubscribe: () => {
        if (!active) return Promise.resolve();
        active = false;
        owner.handlers.delete(registration);
        if (this.topics.get(topic) !== owner) return Promise.resolve();
        if (owner.handlers.size > 0) {
          if (registration.presence && !this.presenceWanted(owner)) this.dropMembers(owner);
          return Promise.resolve();
        }
        this.topics.delete(topic);
        this.dropMembers(owner);
        if (!owner.confirmed) owner.settleReady(new RealtimeError("unsubscribed", `unsubscribed from ${topic} before the server confirmed it`, { topic }));
        // Not connected: the server already dropped the topic with the old connection.
        if (this.stateValue !== "connected") return Promise.resolve();
        return this.request({ action: "unsubscribe", topic }, "unsubscribed").then(noop);
      },
    };
  }

  /** Publishes to a topic allowed by the server's `--publish-patterns`; resolves with the delivery count. */
  publish(topic: string, message: Record<string, unknown> & { type: string }): Promise<{ delivered: number }> {
    return this.request({ action: "publish", topic, message }, "published").then((reply) => ({
      delivered: typeof reply.delivered === "number" ? reply.delivered : 0,
    }));
  }

  /**
   * Replaces the open connection's token now (`refresh` command) with one from `getToken` (or
   * `token` when given); resolves with the new expiry (ISO time, or null for a token without
   * `exp`). The server refuses (`forbidden`) a token that does not verify or names another user,
   * and the old expiry stands. Automatic with `getToken` unless `refreshAhead: false`.
   */
  async refreshToken(token?: string): Promise<{ expiresAt: string | null }> {
    const next = token ?? (this.options.getToken ? await this.options.getToken() : this.options.token);
    if (!next) throw new RealtimeError("token-failed", "no token to refresh with: pass one or set getToken");
    const obtainedAt = Date.now();
    const reply = await this.request({ action: "refresh", token: next }, "refreshed");
    this.tokenValue = next;
    this.tokenObtainedAt = obtainedAt;
    if (this.stateValue === "connected") this.scheduleRefresh();
    return { expiresAt: typeof reply["expires-at"] === "string" ? reply["expires-at"] : null };
  }

  /**
   * Who is on a topic with presence now (`presence` action): at most the server's
   * `--presence-max-users` users, `truncated` when there are more. Needs the right to subscribe
   * to the topic, not a subscription. Rejects with `bad-request` for a topic without presence and
   * `forbidden` when not allowed.
   */
  presence(topic: string): Promise<PresenceListing> {
    return this.request({ action: "presence", topic }, "presence").then((reply) => ({
      topic,
      users: presenceUsers(reply.users),
      truncated: reply.truncated === true,
    }));
  }

  /** Round trip to the server (`ping` → `pong`). */
  ping(): Promise<void> {
    return this.request({ action: "ping" }, "pong").then(noop);
  }

  // ---------------------------------------------------------------------------------------------
  // Connection

  private async openSocket(generation: number): Promise<void> {
    let token: string | undefined;
    try {
      token = this.options.getToken ? await this.options.getToken() : this.options.token;
    } catch (cause) {
      if (generation !== this.generation) return;
      this.emitError(new RealtimeError("token-failed", `getToken failed: ${describe(cause)}`, { cause }));
      this.afterFailedAttempt(new RealtimeError("token-failed", "getToken failed", { cause }));
      return;
    }
    if (generation !== this.generation) return;

    const Ctor = this.webSocketConstructor();
    if (!Ctor) {
      const error = new RealtimeError("no-websocket", "no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package)");
      this.emitError(error);
      this.afterFailedAttempt(error);
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new Ctor(urlWithToken(this.url, token));
      this.tokenValue = token;
      this.tokenObtainedAt = Date.now();
    } catch (cause) {
      const error = new RealtimeError("connect-failed", `cannot open WebSocket: ${describe(cause)}`, { cause });
      this.emitError(error);
      this.afterFailedAttempt(error);
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (event: { data: unknown }) => {
      if (this.ws === ws) this.onFrame(event.data);
    });
    // The HTTP status of a refused upgrade. `ws` reports it in its `error` event ("Unexpected
    // server response: 401") before `close` 1006; browsers do not expose it at all.
    let refusedStatus: number | undefined;
    let failure: string | undefined;
    ws.addEventListener("close", (event: { code?: number; reason?: string }) => {
      if (this.ws === ws) this.onClose(event.code ?? 1006, event.reason ?? "", refusedStatus, failure);
    });
    ws.addEventListener("error", (event: { message?: unknown; error?: { message?: unknown } }) => {
      refusedStatus = upgradeStatus(event) ?? refusedStatus;
      failure = errorText(event) || failure;
    });
  }

  private webSocketConstructor(): WebSocketConstructor | undefined {
    return this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  }

  private onConnected(message: ServerMessage): void {
    this.connectionIdValue = String(message["connection-id"] ?? "");
    this.userIdValue = message["user-id"] === undefined ? null : String(message["user-id"]);
    this.rolesValue = Array.isArray(message.roles) ? message.roles.map(String) : [];
    this.attempt = 0;
    this.shutdownAnnounced = false;
    this.stateValue = "connected";
    this.scheduleRefresh();
    // Subscriptions first, then the queue in issue order, before handlers can send anything.
    for (const entry of this.topics.values()) this.sendSubscribe(entry);
    const queued = this.queue.splice(0);
    for (const request of queued) this.sendRequest(request);
    this.emit("state", "connected");
    this.emit("connected", {
      connectionId: this.connectionIdValue,
      userId: this.userIdValue ?? "",
      roles: [...this.rolesValue],
    });
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  private onClose(code: number, reason: string, refusedStatus?: number, failure?: string): void {
    const wasConnected = this.stateValue === "connected";
    this.ws = null;
    this.clearConnection();
    this.failRequests(() => new RealtimeError("disconnected", `connection closed (${code}) before the reply arrived`));
    const willReconnect = this.options.reconnect !== false;
    if (wasConnected) {
      this.setState(willReconnect ? "reconnecting" : "closed");
      this.emit("disconnected", { code, reason, willReconnect });
      if (willReconnect) this.scheduleReconnect();
      else this.giveUp(new RealtimeError("disconnected", `connection closed (${code})`));
    } else {
      const error = refusedStatus !== undefined
        ? new RealtimeError("connect-failed", `the server answered the upgrade with HTTP ${refusedStatus}${
          refusedStatus === 401 ? " (missing, bad or expired token)" : refusedStatus === 403 ? " (origin not allowed)" : ""}`, { status: refusedStatus })
        : new RealtimeError("connect-failed", `connection failed (close code ${code}${reason ? `: ${reason}` : ""}${
          failure ? `: ${failure}` : code === 1006 ? "; a browser reports a refused upgrade, e.g. HTTP 401 for a bad token, this way too" : ""})`);
      this.emitError(error);
      this.afterFailedAttempt(error);
    }
  }

  private afterFailedAttempt(error: RealtimeError): void {
    if (this.options.reconnect === false) {
      this.setState("closed");
      this.giveUp(error);
      return;
    }
    this.setState("reconnecting");
    this.scheduleReconnect();
  }

  /** Reconnection is off and the connection is gone: nothing queued will ever be sent. */
  private giveUp(error: RealtimeError): void {
    this.failQueue(() => new RealtimeError("disconnected", "not connected and reconnection is off"));
    this.failConnectWaiters(error);
    for (const entry of this.topics.values()) {
      if (!entry.confirmed) entry.settleReady(new RealtimeError("disconnected", "not connected and reconnection is off", { topic: entry.topic }));
    }
  }

  private scheduleReconnect(): void {
    const options = this.options.reconnect === false ? {} : this.options.reconnect ?? {};
    let delay = backoffDelay(this.attempt, options, this.options.random);
    this.attempt += 1;
    if (this.shutdownAnnounced) {
      // The server is restarting: give it time, and keep the jitter so clients spread out.
      delay += this.shutdownReconnectDelayMs;
      this.shutdownAnnounced = false;
    }
    const generation = this.generation;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (generation === this.generation) void this.openSocket(generation);
    }, delay);
  }

  /** Arms the timer that refreshes the current token ahead of its `exp` (see `refreshAhead`). */
  private scheduleRefresh(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (!this.options.getToken || this.options.refreshAhead === false) return;
    const exp = tokenExpiry(this.tokenValue);
    if (exp === undefined) return;
    const ws = this.ws;
    const delay = refreshDelay(exp, this.tokenObtainedAt);
    // setTimeout holds at most 2^31 - 1 ms (24.8 days); a later refresh re-arms when this fires.
    const maxTimer = 2 ** 31 - 1;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      if (this.ws !== ws || this.stateValue !== "connected") return;
      if (delay > maxTimer) return this.scheduleRefresh();
      this.refreshToken().catch((cause) => {
        // The connection stays open until exp; the server then closes it with 4001 and the
        // client reconnects with a token from getToken.
        if (this.ws !== ws) return;
        const code = cause instanceof RealtimeError ? cause.code : "token-failed";
        this.emitError(new RealtimeError(code, `token refresh failed: ${describe(cause)}`, { cause }));
      });
    }, Math.min(delay, maxTimer));
  }

  private clearConnection(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    this.connectionIdValue = null;
    this.userIdValue = null;
    this.rolesValue = [];
    for (const entry of this.topics.values()) {
      entry.pendingRef = undefined;
      this.dropMembers(entry); // listed again after the next subscribed reply
    }
  }

  private setState(state: ConnectionState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.emit("state", state);
  }

  // ---------------------------------------------------------------------------------------------
  // Frames

  private onFrame(data: unknown): void {
    let message: ServerMessage;
    try {
      const text = typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer);
      message = JSON.parse(text);
    } catch {
      this.emitError(new RealtimeError("bad-message", "the server sent a frame that is not JSON"));
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      this.emitError(new RealtimeError("bad-message", "the server sent a message without a string type"));
      return;
    }
    if (message.type === "connected") {
      // The handshake frame; `connected` is a lifecycle event, so a later one is not re-emitted.
      if (this.stateValue !== "connected") this.onConnected(message);
      return;
    }
    if (message.type === "server-shutdown") this.shutdownAnnounced = true;
    if (message.ref !== undefined && this.settleRequest(message)) {
      if (message.type !== "error") this.emitMessage(message);
      return;
    }
    if (message.type === "error") {
      const code = typeof message.code === "string" ? message.code : "error";
      this.emitError(new RealtimeError(code, typeof message.message === "string" ? message.message : code));
      return;
    }
    if (typeof message.topic === "string" && !REPLY_TYPES.has(message.type)) {
      const entry = this.topics.get(message.topic);
      if (entry) {
        if (message.type === "presence-join" || message.type === "presence-leave") {
          // Not a message published on the topic: the member list and on("presence-...") get it.
          this.applyPresence(entry, message);
        } else {
          if (!this.advance(entry, message)) return; // already handed over
          for (const registration of [...entry.handlers]) this.call(registration.handler, message);
          this.replayDone(entry);
        }
      }
    }
    this.emitMessage(message);
  }

  /** Handlers of the message's type, then catch-all handlers registered with `on("*", ...)`. */
  private emitMessage(message: ServerMessage): void {
    this.emit(message.type, message);
    this.emit("*", message);
  }

  /** Settles the request this reply answers; false when it answers none (a stale or foreign ref). */
  private settleRequest(message: ServerMessage): boolean {
    const ref = String(message.ref);
    const request = this.inflight.get(ref);
    if (!request || (message.type !== request.expect && message.type !== "error")) return false;
    this.inflight.delete(ref);
    if (request.timer !== undefined) clearTimeout(request.timer);
    if (message.type === "error") {
      const code = typeof message.code === "string" ? message.code : "error";
      const text = typeof message.message === "string" ? message.message : code;
      request.reject(new RealtimeError(code, text, { topic: typeof request.frame.topic === "string" ? request.frame.topic : undefined }));
    } else {
      request.resolve(message);
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  private request(frame: Record<string, unknown>, expect: string): Promise<ServerMessage> {
    if (this.stateValue === "closed") {
      return Promise.reject(new RealtimeError("disconnected", "the client is disconnected; call connect() first"));
    }
    return new Promise<ServerMessage>((resolve, reject) => {
      const request: Request = { ref: String(++this.nextRef), frame, expect, resolve, reject };
      if (this.stateValue === "connected") {
        this.sendRequest(request);
      } else if (this.queue.length >= this.maxQueuedCommands) {
        reject(new RealtimeError("queue-full", `not connected and ${this.maxQueuedCommands} commands are already queued`));
      } else {
        this.queue.push(request);
      }
    });
  }

  private sendRequest(request: Request): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) {
      request.reject(new RealtimeError("disconnected", "the connection closed before the command was sent"));
      return;
    }
    try {
      ws.send(JSON.stringify({ ...request.frame, ref: request.ref }));
    } catch (cause) {
      request.reject(new RealtimeError("disconnected", `cannot send: ${describe(cause)}`, { cause }));
      return;
    }
    this.inflight.set(request.ref, request);
    request.timer = setTimeout(() => {
      if (this.inflight.get(request.ref) !== request) return;
      this.inflight.delete(request.ref);
      request.reject(new RealtimeError("timeout", `no reply to ${String(request.frame.action)} within ${this.requestTimeoutMs} ms`));
    }, this.requestTimeoutMs);
  }

  private failRequests(error: () => RealtimeError): void {
    const requests = [...this.inflight.values()];
    this.inflight.clear();
    for (const request of requests) {
      if (request.timer !== undefined) clearTimeout(request.timer);
      request.reject(error());
    }
  }

  private failQueue(error: () => RealtimeError): void {
    for (const request of this.queue.splice(0)) request.reject(error());
  }

  private failConnectWaiters(error: RealtimeError): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  // ---------------------------------------------------------------------------------------------
  // Subscriptions

  private newTopicEntry(topic: string): TopicEntry {
    let settle: (error?: RealtimeError) => void = noop;
    const entry: TopicEntry = {
      topic,
      handlers: new Set(),
      confirmed: false,
      ready: new Promise<void>((resolve, reject) => {
        let settled = false;
        settle = (error) => {
          if (settled) return;
          settled = true;
          if (error) reject(error);
          else resolve();
        };
      }),
      settleReady: (error) => settle(error),
    };
    entry.ready.catch(noop); // a refusal is the caller's to observe; ignoring `ready` must not crash Node
    return entry;
  }

  private sendSubscribe(entry: TopicEntry): void {
    entry.replayThrough = undefined;
    const recover = entry.position && !entry.positionLost ? { ...entry.position } : undefined;
    const request: Request = {
      ref: String(++this.nextRef),
      frame: recover ? { action: "subscribe", topic: entry.topic, recover } : { action: "subscribe", topic: entry.topic },
      expect: "subscribed",
      resolve: (reply) => {
        if (this.topics.get(entry.topic) !== entry) return;
        entry.pendingRef = undefined;
        entry.confirmed = true;
        this.onSubscribed(entry, reply, recover !== undefined || entry.positionLost === true);
        entry.settleReady();
        if (this.presenceWanted(entry)) this.listPresence(entry);
      },
      reject: (error) => {
        if (this.topics.get(entry.topic) !== entry || entry.pendingRef !== request.ref) return;
        entry.pendingRef = undefined;
        if (error.code === "disconnected") return; // sent again after the reconnect
        this.topics.delete(entry.topic);
        if (error.code === "timeout" && this.ws) {
          // The server may still subscribe; make sure it does not stay subscribed for nothing.
          try {
            this.ws.send(JSON.stringify({ action: "unsubscribe", topic: entry.topic }));
          } catch {
            // the connection is going away, and the topic with it
          }
        }
        const refused = new RealtimeError(error.code, `subscription to ${entry.topic} failed: ${error.message}`, { topic: entry.topic });
        if (entry.confirmed) this.emitError(refused);
        else entry.settleReady(refused);
      },
    };
    entry.pendingRef = request.ref;
    this.sendRequest(request);
  }

  /**
   * The `subscribed` reply: on a topic with history it carries the stream's last offset and epoch.
   * `resumed`: this subscribe follows one the client held a position for (a reconnect).
   */
  private onSubscribed(entry: TopicEntry, reply: ServerMessage, resumed: boolean): void {
    const epoch = reply.epoch;
    const last = reply.offset;
    if (typeof epoch !== "string" || typeof last !== "number") {
      entry.position = undefined; // no history on this topic (any more)
      entry.positionLost = false;
      if (resumed) this.emit("recovery", { topic: entry.topic, recovered: false, replayed: 0 });
      return;
    }
    if (reply.recovered === true && entry.position && !entry.positionLost) {
      // Messages position.offset + 1 .. last follow the reply, then live ones.
      entry.replayThrough = last;
      entry.replayed = 0;
      this.replayDone(entry);
      return;
    }
    entry.position = { epoch, offset: last };
    entry.positionLost = false;
    if (resumed) this.emit("recovery", { topic: entry.topic, recovered: false, replayed: 0 });
  }

  /**
   * Moves a topic's position past a message; false for a message already handed over (an offset
   * at or below the position, during a replay). Outside a replay an offset that goes back means
   * the stream restarted (it expired or was dropped) under a new epoch the client does not know.
   */
  private advance(entry: TopicEntry, message: ServerMessage): boolean {
    const offset = message.offset;
    if (typeof offset !== "number" || !entry.position) return true;
    if (offset <= entry.position.offset) {
      if (entry.replayThrough !== undefined) return false;
      entry.positionLost = true;
    }
    entry.position.offset = offset;
    if (entry.replayThrough !== undefined && offset <= entry.replayThrough) entry.replayed = (entry.replayed ?? 0) + 1;
    return true;
  }

  /** Reports a recovery once its replay reached the handlers. */
  private replayDone(entry: TopicEntry): void {
    if (entry.replayThrough === undefined || !entry.position || entry.position.offset < entry.replayThrough) return;
    const replayed = entry.replayed ?? 0;
    entry.replayThrough = undefined;
    entry.replayed = 0;
    this.emit("recovery", { topic: entry.topic, recovered: true, replayed });
  }

  // ---------------------------------------------------------------------------------------------
  // Presence

  private presenceWanted(entry: TopicEntry): boolean {
    for (const registration of entry.handlers) if (registration.presence) return true;
    return false;
  }

  /**
   * Lists the topic's members after its `subscribed` reply. The server answers with a list taken
   * between two of the topic's events and sends every later event after the answer: events before
   * the answer are in it, so the list starts from the answer and applies only what follows.
   */
  private listPresence(entry: TopicEntry): void {
    const request: Request = {
      ref: String(++this.nextRef),
      frame: { action: "presence", topic: entry.topic },
      expect: "presence",
      resolve: (reply) => {
        if (!this.isCurrentListing(entry, request.ref)) return;
        entry.presenceRef = undefined;
        entry.members = new Map();
        for (const user of presenceUsers(reply.users)) entry.members.set(user.userId, { userId: user.userId, info: user.info });
        entry.truncated = reply.truncated === true;
        this.emitMembers(entry, "listed");
      },
      reject: (error) => {
        if (!this.isCurrentListing(entry, request.ref)) return;
        entry.presenceRef = undefined;
        if (error.code === "disconnected") return; // listed again after the reconnect
        const failed = new RealtimeError(error.code, `presence of ${entry.topic}: ${error.message}`, { topic: entry.topic });
        this.emit("members", { topic: entry.topic, users: [], truncated: false, reason: "failed", error: failed });
      },
    };
    entry.members = undefined;
    entry.truncated = undefined;
    entry.presenceRef = request.ref;
    this.sendRequest(request);
  }

  private isCurrentListing(entry: TopicEntry, ref: string): boolean {
    return this.topics.get(entry.topic) === entry && entry.presenceRef === ref && this.presenceWanted(entry);
  }

  /** A join or leave after the listing; ignored before it (the listing already counts it). */
  private applyPresence(entry: TopicEntry, message: ServerMessage): void {
    const members = entry.members;
    if (!members || typeof message["user-id"] !== "string") return;
    const userId = message["user-id"];
    if (message.type === "presence-join") {
      const user = { userId, info: infoOf(message.info) };
      members.delete(userId); // a second join (not sent by the server) must not duplicate the user
      members.set(userId, user);
      this.emitMembers(entry, "join", user);
    } else {
      const user = members.get(userId);
      if (!user) return; // not listed (a truncated list)
      members.delete(userId);
      this.emitMembers(entry, "leave", user);
    }
  }

  /** Forgets the member list and any listing in flight; reports it when there was a list. */
  private dropMembers(entry: TopicEntry): void {
    const had = entry.members !== undefined;
    entry.members = undefined;
    entry.truncated = undefined;
    entry.presenceRef = undefined;
    if (had) this.emit("members", { topic: entry.topic, users: [], truncated: false, reason: "dropped" });
  }

  private emitMembers(entry: TopicEntry, reason: MembersChange["reason"], user?: PresenceMember): void {
    const change: MembersChange = {
      topic: entry.topic,
      users: [...(entry.members?.values() ?? [])],
      truncated: entry.truncated === true,
      reason,
    };
    if (user) change.user = user;
    this.emit("members", change);
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  private emit(event: string, payload: unknown): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const handler of [...set]) this.call(handler, payload, event === "error");
  }

  private emitError(error: Error): void {
    this.emit("error", error);
  }

  /** Runs a user handler; one that throws must not break the client's dispatch. */
  private call(handler: AnyHandler, payload: unknown, isErrorHandler = false): void {
    try {
      handler(payload);
    } catch (cause) {
      if (!isErrorHandler && this.listeners.has("error")) {
        this.emitError(new RealtimeError("handler-error", `an event handler threw: ${describe(cause)}`, { cause }));
        return;
      }
      const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
      if (typeof report === "function") report(cause);
      else if (typeof console !== "undefined") console.error(cause);
    }
  }
}

/** The status in `ws`'s "Unexpected server response: 401" error, if that is what this is. */
function upgradeStatus(event: { message?: unknown; error?: { message?: unknown } } | undefined): number | undefined {
  const match = /Unexpected server response: (\d{3})/.exec(errorText(event));
  return match ? Number(match[1]) : undefined;
}

/** The text of an `error` event: `ws` gives one (e.g. "connect ECONNREFUSED ..."), browsers none. */
function errorText(event: { message?: unknown; error?: { message?: unknown } } | undefined): string {
  if (typeof event?.message === "string") return event.message;
  return typeof event?.error?.message === "string" ? event.error.message : "";
}

function infoOf(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** The `users` of a `presence` answer. */
function presenceUsers(value: unknown): PresenceUser[] {
  if (!Array.isArray(value)) return [];
  const users: PresenceUser[] = [];
  for (const item of value) {
    if (item === null || typeof item !== "object" || typeof item["user-id"] !== "string") continue;
    users.push({
      userId: item["user-id"],
      connections: typeof item.connections === "number" ? item.connections : 0,
      info: infoOf(item.info),
    });
  }
  return users;
}

function describe(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
