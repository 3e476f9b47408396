-- Faxes sent from the agent's call box (app/fax/agent.py): a job belongs to the call it was sent
-- from and to the agent who sent it (the journey shows it, the agent's panel follows it), and it
-- may carry uploaded PDFs besides catalogue codes. The last try's pages, for the panel to show.
ALTER TABLE fax_jobs
    ADD COLUMN interaction_id uuid REFERENCES interactions (id),
    ADD COLUMN agent_id       text,
    -- [{"name": "offer.pdf", "pages": 2, "tiff": ".../cache/<hash>.tif", "pdf": ".../uploads/<id>.pdf"}]
    ADD COLUMN uploads        jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN pages_sent     integer NOT NULL DEFAULT 0,
    ADD COLUMN pages_expected integer;
CREATE INDEX fax_jobs_interaction ON fax_jobs (interaction_id) WHERE interaction_id IS NOT NULL;
