/**
 * React bindings: `useRealtime(url, tokenOrGetter, options?)` and `usePresence(client, topic)`.
 *
 * One client per `url` for the component's life: it connects on mount and disconnects on
 * unmount (and when `url` changes). The latest `tokenOrGetter` is read at every connect and
 * reconnect, so a refreshed token from props or context is used without a new client.
 */
import { useEffect, useRef, useState } from "react";
import {
  RealtimeClient,
  RealtimeError,
  type MembersChange,
  type PresenceMember,
  type RealtimeClientOptions,
  type RecoveryInfo,
} from "./index.js";

export type TokenOrGetter = string | (() => string | Promise<string>);

/** Client options except the token, which the hook's second argument supplies. */
export type UseRealtimeOptions = Omit<RealtimeClientOptions, "token" | "getToken">;

export interface UseRealtimeResult {
  /** The same instance for as long as `url` is unchanged; never null. */
  client: RealtimeClient;
  /** True while the client's state is `connected`. */
  connected: boolean;
  /**
   * The last recovery after a reconnect on a topic with history (`recovered`, `replayed`), or
   * null before the first one. `recovered: false` means: reload that topic's state.
   */
  recovery: RecoveryInfo | null;
}

/** Options are read when the client is created (on mount and when `url` changes). */
export function useRealtime(url: string, tokenOrGetter: TokenOrGetter, options?: UseRealtimeOptions): UseRealtimeResult {
  const tokenRef = useRef(tokenOrGetter);
  tokenRef.current = tokenOrGetter;

  const clientRef = useRef<{ url: string; client: RealtimeClient } | null>(null);
  if (clientRef.current === null || clientRef.current.url !== url) {
    // Constructing does not connect, so doing it during render has no side effect.
    const client = new RealtimeClient(url, {
      ...options,
      getToken: () => {
        const current = tokenRef.current;
        return typeof current === "function" ? current() : current;
      },
    });
    clientRef.current = { url, client };
  }
  const client = clientRef.current.client;

  const [connected, setConnected] = useState(client.state === "connected");
  const [recovery, setRecovery] = useState<RecoveryInfo | null>(null);

  useEffect(() => {
    setConnected(client.state === "connected");
    const off = client.on("state", (state) => setConnected(state === "connected"));
    const offRecovery = client.on("recovery", (info) => setRecovery(info));
    // Failures are retried with backoff and reported through the client's `error` event; a
    // missing WebSocket implementation is a setup mistake that no retry fixes: say so.
    client.connect().catch((error: { code?: string }) => {
      if (error?.code === "no-websocket") console.error(error);
    });
    return () => {
      off();
      offRecovery();
      client.disconnect();
    };
  }, [client]);

  return { client, connected, recovery };
}

export interface UsePresenceResult {
  /** Who is on the topic, kept exact by the client; empty until listed. */
  users: PresenceMember[];
  /** The server listed fewer users than are present (`--presence-max-users`). */
  truncated: boolean;
  /** True while the client holds the list: listed on the current connection. */
  synced: boolean;
  /**
   * Why there is no list: the subscription was refused, or the listing was (`bad-request` for a
   * topic without presence, `forbidden`). Null otherwise.
   */
  error: RealtimeError | null;
}

interface PresenceState {
  client: RealtimeClient;
  topic: string;
  users: PresenceMember[];
  truncated: boolean;
  synced: boolean;
  error: RealtimeError | null;
}

function presenceState(client: RealtimeClient, topic: string): PresenceState {
  const members = client.members(topic);
  return { client, topic, users: members?.users ?? [], truncated: members?.truncated ?? false, synced: members !== undefined, error: null };
}

const ignore = () => {};

/**
 * The member list of `topic` (a topic with `--presence` on the server), re-rendering on every
 * join and leave. While mounted the hook subscribes `client` to `topic` with `{ presence: true }`
 * (sharing the server subscription with the app's own handlers on it, so the user is present
 * there), and unsubscribes on unmount and when `topic` changes. `client` is usually
 * `useRealtime(...).client`.
 */
export function usePresence(client: RealtimeClient, topic: string): UsePresenceResult {
  const [state, setState] = useState<PresenceState>(() => presenceState(client, topic));

  useEffect(() => {
    let active = true;
    const offMembers = client.on("members", (change: MembersChange) => {
      if (!active || change.topic !== topic) return;
      setState((previous) => ({
        client,
        topic,
        users: change.users,
        truncated: change.truncated,
        synced: change.reason !== "dropped" && change.reason !== "failed",
        error: change.reason === "failed" ? change.error ?? null : change.reason === "listed" ? null : previous.error,
      }));
    });
    // A subscription the server refuses after a reconnect is reported as an `error` event.
    const offError = client.on("error", (error) => {
      if (active && error instanceof RealtimeError && error.topic === topic) setState((s) => ({ ...s, error }));
    });
    const subscription = client.subscribe(topic, ignore, { presence: true });
    subscription.ready.catch((error: RealtimeError) => {
      if (active) setState((s) => ({ ...s, error }));
    });
    setState(presenceState(client, topic));
    return () => {
      active = false;
      offMembers();
      offError();
      subscription.unsubscribe().catch(ignore);
    };
  }, [client, topic]);

  // A render with a new client or topic, before the effect ran: nothing of the old one.
  const current = state.client === client && state.topic === topic ? state : presenceState(client, topic);
  return { users: current.users, truncated: current.truncated, synced: current.synced, error: current.error };
}
