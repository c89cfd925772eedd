/* settle's GraphiQL page: GraphiQL 3 with a fetcher that adds the bearer token typed in the
   token field to every request. Served by the service with the page; it loads nothing else. */
(function () {
  "use strict";

  // GraphiQL's dialogs (react-remove-scroll) add a <style> element and tag it with this nonce,
  // so that the page's Content-Security-Policy admits it without 'unsafe-inline'.
  var script = document.currentScript;
  if (script && script.nonce) {
    window.__webpack_nonce__ = script.nonce;
  }

  var endpoint = document.body.dataset.endpoint || "/graphql";
  var DEFAULT_QUERY = [
    "# settle: the settlement service's GraphQL API.",
    "#",
    "# 1. A development token:",
    "#      settle token --role hospital --org H31010100001",
    "# 2. Paste it in the Bearer token field above, press Enter.",
    "# 3. Run the query: \u25b6 (or Ctrl-Enter).",
    "",
    "{",
    "  institution(code: \"H31010100001\") {",
    "    code",
    "    name",
    "    level",
    "  }",
    "}",
    "",
  ].join("\n");

  /* The token's claims, decoded to tell the user which caller it names; not a verification
     (the service verifies every request). Null when the token is not a JWT. */
  function claimsOf(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var binary = atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="));
      var bytes = Uint8Array.from(binary, function (c) { return c.charCodeAt(0); });
      var claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims !== null && typeof claims === "object" ? claims : null;
    } catch (error) {
      return null;
    }
  }

  function describe(token) {
    if (!token) {
      return { ok: false, text: "No token: the schema is not loaded and every query is refused (401)." };
    }
    var claims = claimsOf(token);
    if (claims === null) {
      return { ok: false, text: "This is not a JWT: the service will refuse it." };
    }
    var who = [claims.role, claims.org].filter(Boolean).join(" ") || "an unnamed caller";
    var expires = typeof claims.exp === "number" ? new Date(claims.exp * 1000) : null;
    if (expires !== null && expires < new Date()) {
      return { ok: false, text: "The token of " + who + " expired at " + expires.toLocaleString() + "." };
    }
    return {
      ok: true,
      text: "Calling as " + who + (expires ? " until " + expires.toLocaleString() : "") +
        " (the token stays in this tab only).",
    };
  }

  /* GraphiQL's fetcher: a JSON POST to the endpoint, with the Headers pane's headers and, unless
     that pane names one, the token field's Authorization header. */
  function fetcherFor(token) {
    return function (params, options) {
      var headers = new Headers({ "Content-Type": "application/json", Accept: "application/json" });
      var extra = (options && options.headers) || {};
      Object.keys(extra).forEach(function (name) { headers.set(name, extra[name]); });
      if (token && !headers.has("Authorization")) {
        headers.set("Authorization", "Bearer " + token);
      }
      return fetch(endpoint, {
        method: "POST",
        headers: headers,
        body: JSON.stringify(params),
        credentials: "same-origin",
      }).then(function (response) {
        return response.text().then(function (text) {
          try {
            return JSON.parse(text);
          } catch (error) {
            return { errors: [{ message: "HTTP " + response.status + ": " + text.slice(0, 500) }] };
          }
        });
      });
    };
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));

  function render(token) {
    root.render(React.createElement(GraphiQL, {
      fetcher: fetcherFor(token),
      // without a token the introspection query could only be refused: ask for the schema
      // once there is one (a new fetcher and schema `undefined` make GraphiQL introspect)
      schema: token ? undefined : null,
      defaultQuery: DEFAULT_QUERY,
      shouldPersistHeaders: false,
    }));
  }

  var form = document.getElementById("token-form");
  var input = document.getElementById("token");
  var status = document.getElementById("token-status");

  function use(token) {
    var description = describe(token);
    status.textContent = description.text;
    status.dataset.ok = description.ok ? "yes" : "no";
    render(token);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    use(input.value.trim().replace(/^Bearer\s+/i, ""));
  });
  use("");
})();
