/**
 * React binding: `useRealtime(url, tokenOrGetter, options?)`.
 *
 * One client per `url` for the component's life: it connects on mount and disconnects on
 * unmount (and when `url` changes). The latest `tokenOrGetter` is read at every connect and
 * reconnect, so a refreshed token from props or context is used without a new client.
 */
import { useEffect, useRef, useState } from "react";
import { RealtimeClient, type RealtimeClientOptions, type RecoveryInfo } from "./index.js";

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
