// Follows a user's notification panel with Herald's typed documents: reads the first page,
// subscribes from its newest cursor, raises an event and waits for it to arrive live, then
// marks it seen. HERALD_URL (default http://127.0.0.1:8080) and HERALD_TOKEN (a user's token)
// say where and who; docs/client/check.sh runs it against a fresh Herald.

import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { MarkSeenDocument, PanelDocument, PanelEventsDocument, PublishDocument, type PanelEventsSubscription } from "./gql/graphql.js";

type Notification = NonNullable<PanelEventsSubscription["notificationEvents"]["notification"]>;

const base = process.env.HERALD_URL ?? "http://127.0.0.1:8080";
const token = process.env.HERALD_TOKEN;
if (!token) throw new Error("set HERALD_TOKEN to a user's token");

/** One operation over HTTP; GraphQL errors become exceptions with their codes. */
async function request<R, V>(document: TypedDocumentNode<R, V>, variables: V): Promise<R> {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/graphql-response+json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await response.json()) as { data?: R | null; errors?: { message: string; extensions?: { code?: string } }[] };
  if (body.errors?.length || !body.data) {
    throw new Error(`HTTP ${response.status}: ${body.errors?.map((e) => `${e.extensions?.code}: ${e.message}`).join("; ")}`);
  }
  return body.data;
}

const run = Date.now().toString(36);
const publish = (title: string) => request(PublishDocument, { input: { type: "WARNINGS", title, idempotencyKey: `${run}-${title}` } });

// Something on the panel, so that it has a cursor to follow from.
await publish("Before we subscribed");
const panel = await request(PanelDocument, { first: 10 });
const newest = panel.notifications.edges[0]?.cursor ?? null;
console.log(`panel: ${panel.notifications.nodes.length} rows, ${panel.notificationCounts.unread} unread`);

const client = createClient({
  url: `${base.replace(/^http/, "ws")}/graphql/ws`,
  webSocketImpl: WebSocket,
  // Herald reads the token from connection_init, as the HTTP header would carry it.
  connectionParams: { Authorization: `Bearer ${token}` },
});

// Following from the newest cursor: what is raised from now on arrives once, live or replayed.
const title = "While we were listening";
const arrived = new Promise<Notification>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("the event did not reach the panel within 15 s")), 15_000);
  const stop = client.subscribe<PanelEventsSubscription>(
    { query: print(PanelEventsDocument), variables: { after: newest } },
    {
      next: ({ data }) => {
        const event = data?.notificationEvents;
        if (event?.kind === "NOTIFICATION" && event.notification?.title === title) {
          clearTimeout(timer);
          stop();
          resolve(event.notification);
        }
      },
      error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
      complete: () => {},
    },
  );
});
await publish(title);
const notification = await arrived;
console.log(`live: ${notification.type} "${notification.title}" (${notification.id})`);

const seen = await request(MarkSeenDocument, { ids: [notification.id] });
console.log(`marked seen: ${seen.markNotificationsSeen.changed}; unseen now ${seen.markNotificationsSeen.counts.unseen}`);
await client.dispose();
