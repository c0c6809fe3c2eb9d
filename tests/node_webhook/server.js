// A mutating admission webhook on Node's standard library alone: it annotates each object
// with "webhook-dev.io/answered-by: node-<version>" and warns with the version. Used by
// webhook-dev's tests and its Node example (docs/languages/node.md).
"use strict";
const fs = require("fs");
const http = require("http");
const https = require("https");
const version = require("./version");

const ANNOTATION = "webhook-dev.io/answered-by";

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? process.argv[index + 1] : fallback;
}

function mutate(review) {
  const object = review.request.object || {};
  const annotations = (object.metadata || {}).annotations;
  const value = `node-${version}`;
  const patch = annotations
    ? [{ op: "add", path: `/metadata/annotations/${ANNOTATION.replace(/~/g, "~0").replace(/\//g, "~1")}`, value }]
    : [{ op: "add", path: "/metadata/annotations", value: { [ANNOTATION]: value } }];
  return {
    apiVersion: review.apiVersion,
    kind: "AdmissionReview",
    response: {
      uid: review.request.uid,
      allowed: true,
      warnings: [version],
      patchType: "JSONPatch",
      patch: Buffer.from(JSON.stringify(patch)).toString("base64"),
    },
  };
}

function handle(request, response) {
  if (request.method !== "POST" || !request.url.startsWith("/mutate")) {
    response.writeHead(404).end();
    return;
  }
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    let review;
    try {
      review = JSON.parse(Buffer.concat(chunks));
    } catch (error) {
      response.writeHead(400).end("not JSON\n");
      return;
    }
    response.writeHead(200, { "Content-Type": "application/json" });
    response.end(JSON.stringify(mutate(review)));
  });
}

const port = Number(option("port", "9443"));
const cert = option("cert");
const server = cert
  ? https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(option("key")) }, handle)
  : http.createServer(handle);
server.listen(port, "127.0.0.1", () =>
  console.log(`webhook ${version} (pid ${process.pid}) listening on 127.0.0.1:${port}`),
);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
