// The graphql-http project's server audits (GraphQL over HTTP conformance), run against a live
// service with a bearer token on every request, since our /graphql refuses anonymous callers.
//
//   npm ci --ignore-scripts                       (once, in this folder)
//   SETTLE_AUDIT_TOKEN=<token> node audit.mjs http://127.0.0.1:8000/graphql
//
// Prints one JSON line per audit, in the audits' order: {id, name, status, reason}; an audit
// that did not pass also carries the last request it sent and what came back, for diagnosis.
// status is graphql-http's: ok, or notice (MAY), warn (SHOULD), error (MUST) when failed; and
// fatal when the audit threw something other than an audit failure (a refused connection, say).
// The audits run one after another, so that each request is attributed to its audit.
// Exit status: 0 when every audit is ok, 1 when one is not, 2 on a usage error.

import { serverAudits } from 'graphql-http';

const BODY_LIMIT = 2000;

const [url] = process.argv.slice(2);
const token = process.env.SETTLE_AUDIT_TOKEN;
if (!url || !token) {
  console.error('usage: SETTLE_AUDIT_TOKEN=<bearer token> node audit.mjs <graphql url>');
  process.exit(2);
}

let exchange = null; // the running audit's last request and a copy of its response

async function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  // a Request shows the headers fetch adds itself (a string body without one gets text/plain);
  // fetch adds accept: */* on the wire when none is given
  const request = new Request(input, { ...init, headers });
  exchange = {
    request: {
      method: request.method,
      url: request.url,
      headers: Object.fromEntries([...request.headers].filter(([name]) => name !== 'authorization')),
      body: init.body ?? null,
    },
    response: null,
  };
  const response = await fetch(request);
  exchange.response = response.clone();
  return response;
}

async function described(record) {
  if (record === null) return { request: null, response: null };
  const { request, response } = record;
  if (response === null) return { request, response: null };
  let body;
  try {
    body = await response.text();
  } catch (error) {
    body = `<unreadable: ${error}>`;
  }
  return {
    request,
    response: {
      status: response.status,
      contentType: response.headers.get('content-type'),
      body: body.length > BODY_LIMIT ? `${body.slice(0, BODY_LIMIT)}...` : body,
    },
  };
}

let allOk = true;
for (const audit of serverAudits({ url, fetchFn: fetchWithToken })) {
  exchange = null;
  let result;
  try {
    const { id, name, status, reason } = await audit.fn();
    result = { id, name, status, reason: reason ?? null };
  } catch (error) {
    result = { id: audit.id, name: audit.name, status: 'fatal', reason: error?.cause ? `${error}: ${error.cause}` : String(error) };
  }
  if (result.status !== 'ok') {
    allOk = false;
    Object.assign(result, await described(exchange));
  }
  console.log(JSON.stringify(result));
}
process.exit(allOk ? 0 : 1);
