// A Relay producer and worker in Node (18+), with nothing but fetch.
//   RELAY_URL=http://127.0.0.1:3001 RELAY_QUEUE=default node examples/node/worker.mjs
const base = `${process.env.RELAY_URL ?? "http://127.0.0.1:3001"}/api`;
const queue = process.env.RELAY_QUEUE ?? "default";
const headers = { "Content-Type": "application/json" };
if (process.env.RELAY_API_KEY) headers["X-API-KEY"] = process.env.RELAY_API_KEY;

async function call(method, path, body) {
  const response = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok && !(response.status === 404 && data.code === "NO_MESSAGE")) {
    throw new Error(`${method} ${path}: ${response.status} ${data.code}: ${data.message}`);
  }
  return { status: response.status, data };
}

// Producer: enqueue a message.
const { data: added } = await call("POST", "/queue/message", { type: "email", payload: { to: "ada@example.com" }, queue });
console.log(`enqueued ${added.id}`);

// Worker: lease messages with a long poll, handle them, ack on success, nack on failure.
const { data: batch } = await call("GET", `/queue/messages/batch?queue=${queue}&count=10&timeout=5&consumerId=node`);
for (const message of batch.messages) {
  try {
    console.log(`handling ${message.id}: ${JSON.stringify(message.payload)}`);
    await call("POST", "/queue/ack", { id: message.id, lock_token: message.lock_token });
    console.log(`acknowledged ${message.id}`);
  } catch (error) {
    await call("POST", `/queue/message/${message.id}/nack`, { lock_token: message.lock_token, errorReason: String(error) });
  }
}
