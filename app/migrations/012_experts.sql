-- Experts outside the center (app/experts/): a VIP customer's own expert, offered the call first
-- when an agent asks for help (an id of `experts.directory` in the configuration; an id no longer
-- configured is skipped). Offers, accepts, rejects and timeouts are interaction events.
ALTER TABLE customers ADD COLUMN own_expert text;
