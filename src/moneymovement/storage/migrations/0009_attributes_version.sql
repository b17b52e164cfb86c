-- An account's attributes have a version of their own (issue: "version means two
-- things"): `version` still rises with every change, its balances' included; the new
-- `attributes_version` only with a change of its attributes or state (UpdateAccount,
-- FreezeAccount, UnfreezeAccount, CloseAccount), so optimistic concurrency on the
-- attributes no longer conflicts with money moving. Appended: the row type keeps its
-- earlier columns in place. Accounts that exist start at 1.
ALTER TABLE accounts
    ADD COLUMN attributes_version bigint NOT NULL DEFAULT 1 CHECK (attributes_version > 0);
