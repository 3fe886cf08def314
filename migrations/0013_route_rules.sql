-- Route policies (docs/routes.md): for an API, which requests (host, methods, path pattern) need
-- what of the caller. Gateways ask Postern per request, or enforce an export of these rules.
-- An API with rules cannot be deleted (RESTRICT); the scopes a rule names are checked by the
-- service when an API's scopes change, since they live in the rule's lists.
CREATE TABLE route_rules (
  id                     text PRIMARY KEY,
  api_id                 text NOT NULL REFERENCES apis (id) ON DELETE RESTRICT,
  -- lowercased, with its port when one is given; null: any host
  host                   text,
  -- uppercase method names; empty: any method
  methods                jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(methods) = 'array'),
  path                   text NOT NULL,
  public                 boolean NOT NULL DEFAULT false,
  scopes_all             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(scopes_all) = 'array'),
  scopes_any             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(scopes_any) = 'array'),
  roles                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(roles) = 'array'),
  clients                jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(clients) = 'array'),
  sender_constrained     text CHECK (sender_constrained IN ('dpop', 'mtls', 'any')),
  rate_limit_per_minute  integer CHECK (rate_limit_per_minute BETWEEN 1 AND 1000000),
  cache_seconds          integer CHECK (cache_seconds BETWEEN 0 AND 86400),
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX route_rules_api_id ON route_rules (api_id);
