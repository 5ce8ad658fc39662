CREATE TABLE automl_batches (
	id SERIAL NOT NULL, 
	pipeline VARCHAR(64) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	file_name VARCHAR(512) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	reason TEXT, 
	stored_path VARCHAR(1024), 
	n_rows INTEGER NOT NULL, 
	received_at VARCHAR(40) NOT NULL, 
	cycle_id VARCHAR(64), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_automl_batches_pipeline_sha UNIQUE (pipeline, sha256)
);
CREATE INDEX ix_automl_batches_pipeline ON automl_batches (pipeline);
CREATE TABLE automl_schemas (
	pipeline VARCHAR(64) NOT NULL, 
	schema_json TEXT NOT NULL, 
	created_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (pipeline)
);
CREATE TABLE automl_cycles (
	cycle_id VARCHAR(64) NOT NULL, 
	pipeline VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	started_at VARCHAR(40) NOT NULL, 
	finished_at VARCHAR(40) NOT NULL, 
	result_json TEXT NOT NULL, 
	PRIMARY KEY (cycle_id)
);
CREATE INDEX ix_automl_cycles_pipeline ON automl_cycles (pipeline);
CREATE TABLE automl_drift_state (
	pipeline VARCHAR(64) NOT NULL, 
	state_json TEXT NOT NULL, 
	updated_at VARCHAR(40) NOT NULL, 
	PRIMARY KEY (pipeline)
);
CREATE TABLE automl_promotions (
	id SERIAL NOT NULL, 
	pipeline VARCHAR(64) NOT NULL, 
	model_name VARCHAR(256) NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	intent_id INTEGER, 
	from_version VARCHAR(32), 
	to_version VARCHAR(32), 
	metric VARCHAR(32), 
	challenger_score FLOAT, 
	champion_score FLOAT, 
	reason TEXT, 
	actor VARCHAR(128) NOT NULL, 
	cycle_id VARCHAR(64), 
	created_at VARCHAR(40) NOT NULL, 
	details_json TEXT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_automl_promotions_pipeline ON automl_promotions (pipeline);
