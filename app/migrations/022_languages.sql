-- One language per caller (README, "Languages"): a customer's stored preference, and the
-- language each interaction was served in (NULL: every prompt as written, none chosen).
ALTER TABLE customers ADD COLUMN language text;
ALTER TABLE interactions ADD COLUMN language text;
