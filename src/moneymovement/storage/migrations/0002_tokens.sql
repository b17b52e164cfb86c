-- Token revocation reaches every replica at once.
-- Each server caches token lookups and LISTENs on `mm_token_changed`. Any change to a token
-- row (revocation by `moneymovement tokens revoke`, or an operator's UPDATE or DELETE by
-- hand) notifies with the token's id, and each server drops that token from its cache.
-- A trigger rather than a NOTIFY in the revoke query, so that no path can forget it; the
-- notification is sent at commit, in the same transaction as the change.

CREATE FUNCTION notify_token_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mm_token_changed', OLD.token_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_tokens_changed
AFTER UPDATE OR DELETE ON api_tokens
FOR EACH ROW EXECUTE FUNCTION notify_token_changed();
