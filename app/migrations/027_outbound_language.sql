-- The customer's language on the calls we place (README, "Languages"): a lead's, from the
-- list's optional `language` column, and a callback's, the language the call that asked for
-- it was served in (or the one a web request gave). NULL: the customer's stored preference,
-- else the center's default.
ALTER TABLE campaign_leads ADD COLUMN language text;
ALTER TABLE callbacks ADD COLUMN language text;
