-- Acting for one holder (docs/platforms.md, "Acting for a holder").
--
-- A token may be scoped to one holder of its tenant: every call it makes acts for that
-- holder, whatever the call says. The holder is a reference the database checks (the
-- holder must exist in the token's tenant); a token without one is the platform's.
ALTER TABLE api_tokens
    ADD COLUMN holder_id text,
    ADD CONSTRAINT api_tokens_holder_fkey FOREIGN KEY (tenant_id, holder_id)
        REFERENCES holders (tenant_id, holder_id);

-- A platform account that calls acting for a holder may credit (a fee account, say):
-- they may name it as the account a movement credits, never read it or debit it.
ALTER TABLE accounts
    ADD COLUMN open_to_holders boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT accounts_open_to_holders_is_the_platforms
        CHECK (NOT open_to_holders OR holder_ref IS NULL);
