// The Rego policy `postern routes export --format opa` writes beside its data document, for the
// OPA-Envoy plugin (input.attributes.request.http). It reads the rules from data.postern.rules,
// in the order they are tried (services/route-export.ts orderRules), takes the first that covers
// the request, and allows it when the rule is public or the Bearer token meets it: signature and
// issuer against Postern's JWKS, type at+jwt (RFC 9068), the rule's API among its audiences,
// then scopes (all of, any of), roles and clients from its claims. A host with rules and a
// request none covers is denied, like a host without rules (default deny). Rules that require a
// sender-constrained token are denied: the plugin cannot check a DPoP proof or a certificate
// binding.
export const ROUTES_REGO = String.raw`package postern.authz

import rego.v1

default allow := false

http_request := input.attributes.request.http

request_host := lower(http_request.host)

request_path := split(http_request.path, "?")[0]

path_parts := split(substring(request_path, 1, -1), "/") if startswith(request_path, "/")

# The index of every rule that covers the request; the lowest wins (data is in match order).
candidates contains i if {
	some i, rule in data.postern.rules
	host_ok(rule)
	method_ok(rule)
	path_ok(rule)
}

host_ok(rule) if rule.host == request_host

host_ok(rule) if rule.host == null

method_ok(rule) if count(rule.methods) == 0

method_ok(rule) if http_request.method in rule.methods

segment_ok(segment, part) if segment.literal == part

segment_ok(segment, part) if {
	segment.param
	part != ""
}

path_ok(rule) if {
	not rule.prefix
	count(path_parts) == count(rule.segments)
	every i, segment in rule.segments {
		segment_ok(segment, path_parts[i])
	}
}

path_ok(rule) if {
	rule.prefix
	count(path_parts) > count(rule.segments)
	every i, segment in rule.segments {
		segment_ok(segment, path_parts[i])
	}
}

winner := data.postern.rules[min(candidates)] if count(candidates) > 0

bearer := token if {
	[scheme, token] := split(http_request.headers.authorization, " ")
	lower(scheme) == "bearer"
}

jwks := http.send({"method": "GET", "url": data.postern.jwks_uri, "force_cache": true, "force_cache_duration_seconds": 60}).raw_body

claims := payload if {
	[header, _, _] := io.jwt.decode(bearer)
	header.typ == "at+jwt"
	[valid, _, payload] := io.jwt.decode_verify(bearer, {"cert": jwks, "iss": data.postern.issuer, "aud": winner.api})
	valid
}

token_scopes := {scope | some scope in split(claims.scope, " ")}

allow if winner.public

allow if {
	not winner.public
	winner.sender_constrained == null
	claims
	every scope in winner.scopes_all {
		scope in token_scopes
	}
	any_scope_ok
	roles_ok
	clients_ok
}

any_scope_ok if count(winner.scopes_any) == 0

any_scope_ok if {
	some scope in winner.scopes_any
	scope in token_scopes
}

roles_ok if count(winner.roles) == 0

roles_ok if {
	some role in winner.roles
	role in claims.roles
}

clients_ok if count(winner.clients) == 0

clients_ok if claims.client_id in winner.clients
`;
