BEGIN TRANSACTION;
CREATE TABLE datasets (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	n_rows INTEGER NOT NULL, 
	n_columns INTEGER NOT NULL, 
	size_bytes INTEGER NOT NULL, 
	file_name VARCHAR(255) NOT NULL, 
	schema JSON NOT NULL, 
	profile JSON NOT NULL, 
	notes JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (content_hash)
);
INSERT INTO "datasets" VALUES('72a47bc7f83afccd','Leads — 2024 ünïcode.csv','72a47bc7f83afccdba44a3a4ca050105aba5a9152799114f882ac260143e5a1a',120,5,6419,'72a47bc7f83afccd.parquet','[{"name": "x1", "kind": "numeric", "dtype": "float64"}, {"name": "x2", "kind": "numeric", "dtype": "float64"}, {"name": "colour", "kind": "categorical", "dtype": "object"}, {"name": "flag", "kind": "boolean", "dtype": "boolean"}, {"name": "label", "kind": "categorical", "dtype": "object"}]','{"n_rows": 120, "n_columns": 5, "duplicate_rows": 0, "columns": [{"name": "x1", "kind": "numeric", "dtype": "float64", "missing": 1, "missing_share": 0.0083, "distinct": 119, "stats": {"min": -2.3250307746388343, "max": 2.002392583645255, "mean": 0.08101561701663157, "std": 0.9629833625998508, "median": 0.10927969747781388}, "histogram": {"edges": [-2.3250307746388343, -2.10865960672463, -1.8922884388104253, -1.675917270896221, -1.4595461029820163, -1.2431749350678118, -1.0268037671536074, -0.8104325992394028, -0.5940614313251984, -0.377690263410994, -0.16131909549678936, 0.055052072417415054, 0.27142324033161946, 0.4877944082458239, 0.7041655761600287, 0.9205367440742331, 1.1369079119884375, 1.353279079902642, 1.5696502478168464, 1.7860214157310508, 2.002392583645255], "counts": [3, 0, 0, 0, 9, 5, 2, 14, 8, 8, 9, 10, 9, 11, 6, 6, 6, 5, 4, 4]}}, {"name": "x2", "kind": "numeric", "dtype": "float64", "missing": 0, "missing_share": 0.0, "distinct": 120, "stats": {"min": -3.1063368012832915, "max": 3.0660367390488967, "mean": -0.1260640216888012, "std": 1.054783325267584, "median": -0.14361902922265213}, "histogram": {"edges": [-3.1063368012832915, -2.797718124266682, -2.489099447250073, -2.1804807702334634, -1.871862093216854, -1.5632434162002444, -1.2546247391836352, -0.9460060621670259, -0.6373873851504164, -0.3287687081338069, -0.020150031117197376, 0.2884686458994117, 0.5970873229160212, 0.9057059999326307, 1.2143246769492397, 1.5229433539658497, 1.8315620309824587, 2.140180707999068, 2.4487993850156777, 2.757418062032287, 3.0660367390488967], "counts": [1, 0, 2, 4, 2, 10, 8, 8, 15, 16, 11, 14, 7, 10, 6, 4, 0, 1, 0, 1]}}, {"name": "colour", "kind": "categorical", "dtype": "object", "missing": 0, "missing_share": 0.0, "distinct": 4, "top": [["green", 43], ["blue", 40], ["red", 36], ["v\u00e9rt \u2603", 1]], "histogram": {"labels": ["green", "blue", "red", "v\u00e9rt \u2603"], "counts": [43, 40, 36, 1]}}, {"name": "flag", "kind": "boolean", "dtype": "boolean", "missing": 0, "missing_share": 0.0, "distinct": 2, "top": [["False", 64], ["True", 56]], "histogram": {"labels": ["False", "True"], "counts": [64, 56]}}, {"name": "label", "kind": "categorical", "dtype": "object", "missing": 0, "missing_share": 0.0, "distinct": 2, "top": [["yes", 71], ["no", 49]], "histogram": {"labels": ["yes", "no"], "counts": [71, 49]}}], "warnings": []}','[]','2026-11-29 14:19:11.427980');
CREATE TABLE epochs (
	run_id VARCHAR(32) NOT NULL, 
	epoch INTEGER NOT NULL, 
	train_loss FLOAT, 
	val_loss FLOAT, 
	val_metric FLOAT, 
	lr FLOAT, 
	seconds FLOAT, 
	PRIMARY KEY (run_id, epoch), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "epochs" VALUES('81bd275b299f',1,6.47776544094085693359e-01,4.19748336076736450195e-01,8.88888895511627197265e-01,0.002,6.85320169000021905958e-01);
INSERT INTO "epochs" VALUES('81bd275b299f',2,3.84784519672393798828e-01,3.42722743749618530273e-01,8.33333313465118408203e-01,0.002,4.827633149999996931e-01);
INSERT INTO "epochs" VALUES('81bd275b299f',3,2.41231948137283325195e-01,2.88188755512237548828e-01,8.33333313465118408203e-01,0.002,5.01379756999995152e-01);
INSERT INTO "epochs" VALUES('81bd275b299f',4,1.7118790745735168457e-01,2.57730215787887573242e-01,8.88888895511627197265e-01,0.002,4.82529403000000911561e-01);
INSERT INTO "epochs" VALUES('9555bf219cde',1,NULL,2.61048436164855957031e-01,8.88888888888888839545e-01,0.0,6.71533530000374412338e-02);
INSERT INTO "epochs" VALUES('e707974202b7',1,0.7,0.69,0.5,0.001,0.01);
INSERT INTO "epochs" VALUES('5bda07c88d7c',1,0.7,0.72,0.6,0.001,0.02);
INSERT INTO "epochs" VALUES('5bda07c88d7c',2,0.35,0.36,0.7,0.001,0.02);
CREATE TABLE runs (
	id VARCHAR(32) NOT NULL, 
	dataset_id VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	model VARCHAR(64) NOT NULL, 
	target VARCHAR(255) NOT NULL, 
	task VARCHAR(16) NOT NULL, 
	config JSON NOT NULL, 
	params JSON NOT NULL, 
	device VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	heartbeat_at DATETIME, 
	worker_id VARCHAR(64), 
	cancel_requested BOOLEAN NOT NULL, 
	epochs_planned INTEGER, 
	epochs_done INTEGER NOT NULL, 
	batches_per_epoch INTEGER, 
	batches_done INTEGER NOT NULL, 
	duration_s FLOAT, 
	primary_metric VARCHAR(32), 
	primary_value FLOAT, 
	split_fingerprint VARCHAR(64), 
	metrics JSON NOT NULL, 
	baseline JSON NOT NULL, 
	curves JSON NOT NULL, 
	details JSON NOT NULL, 
	error TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE
);
INSERT INTO "runs" VALUES('81bd275b299f','72a47bc7f83afccd','succeeded','mlp','label','binary','{"dataset_id": "72a47bc7f83afccd", "target": "label", "model": "mlp", "task": "auto", "exclude": [], "params": {"epochs": 4, "batch_size": 32}, "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}, "prep": {"impute_numeric": "median", "scaling": "auto", "categorical": "auto", "datetime_parts": true}}','{"optimizer": "adamw", "lr": 0.002, "batch_size": 32, "epochs": 4, "weight_decay": 0.0001, "l1": 0.0, "lr_schedule": "none", "patience": 16, "weight_averaging": 0.5, "restore_best": true, "grad_clip": 1.0, "seed": 0, "device": "auto", "mixed_precision": "on", "hidden_sizes": [256, 256], "activation": "relu", "dropout": 0.1, "batch_norm": false, "init": "he"}','cpu','2026-11-29 14:19:11.953529','2026-11-29 14:19:11.958401','2026-11-29 14:19:15.404562','2026-11-29 14:19:15.327976','c94e3babcbd4',0,4,4,3,0,3.44,'accuracy',1.0,'fde37e1784317c91','{"val": {"accuracy": 0.8888888888888888, "balanced_accuracy": 0.9090909090909092, "precision": 0.8888888888888888, "recall": 0.9090909090909092, "f1": 0.8875, "log_loss": 0.25837289647416095, "roc_auc": 0.948051948051948}, "test": {"accuracy": 1.0, "balanced_accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "log_loss": 0.09238247057668102, "roc_auc": 1.0}}','{"test": {"accuracy": 0.6111111111111112, "balanced_accuracy": 0.5, "precision": 0.3055555555555556, "recall": 0.5, "f1": 0.3793103448275862, "log_loss": 0.6698468149742697, "roc_auc": 0.5}}','{"labels": ["no", "yes"], "confusion_matrix": [[7, 0], [0, 11]], "roc": [{"label": "yes", "fpr": [0.0, 0.0, 0.0, 1.0], "tpr": [0.0, 0.09091, 1.0, 1.0], "auc": 1.0}], "pr": [{"label": "yes", "recall": [0.0, 0.09091, 0.18182, 0.27273, 0.36364, 0.45455, 0.54545, 0.63636, 0.72727, 0.81818, 0.90909, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], "precision": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.91667, 0.84615, 0.78571, 0.73333, 0.6875, 0.64706, 0.61111], "average_precision": 1.0}]}','{"notes": [], "n_train": 84, "n_val": 18, "n_test": 18, "dropped_target_rows": 0, "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "scikit-learn": "1.9.1", "pandas": "2.3.3", "numpy": "2.3.5"}}',NULL);
INSERT INTO "runs" VALUES('9555bf219cde','72a47bc7f83afccd','succeeded','logistic_regression','label','binary','{"dataset_id": "72a47bc7f83afccd", "target": "label", "model": "logistic_regression", "task": "auto", "exclude": [], "params": {}, "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}, "prep": {"impute_numeric": "median", "scaling": "auto", "categorical": "auto", "datetime_parts": true}}','{"C": 1.0, "max_iter": 2000, "seed": 0}','cpu','2026-11-29 14:19:15.413939','2026-11-29 14:19:15.415720','2026-11-29 14:19:15.583178','2026-11-29 14:19:15.519216','0795eeb570f2',0,1,1,1,0,0.164,'accuracy',1.0,'fde37e1784317c91','{"val": {"accuracy": 0.8888888888888888, "balanced_accuracy": 0.9090909090909092, "precision": 0.8888888888888888, "recall": 0.9090909090909092, "f1": 0.8875, "log_loss": 0.26104843616485596, "roc_auc": 0.922077922077922}, "test": {"accuracy": 1.0, "balanced_accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "log_loss": 0.14368675649166107, "roc_auc": 1.0}}','{"test": {"accuracy": 0.6111111111111112, "balanced_accuracy": 0.5, "precision": 0.3055555555555556, "recall": 0.5, "f1": 0.3793103448275862, "log_loss": 0.6698468149742697, "roc_auc": 0.5}}','{"labels": ["no", "yes"], "confusion_matrix": [[7, 0], [0, 11]], "roc": [{"label": "yes", "fpr": [0.0, 0.0, 0.0, 1.0], "tpr": [0.0, 0.09091, 1.0, 1.0], "auc": 1.0}], "pr": [{"label": "yes", "recall": [0.0, 0.09091, 0.18182, 0.27273, 0.36364, 0.45455, 0.54545, 0.63636, 0.72727, 0.81818, 0.90909, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], "precision": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.91667, 0.84615, 0.78571, 0.73333, 0.6875, 0.64706, 0.61111], "average_precision": 1.0}]}','{"notes": [], "n_train": 84, "n_val": 18, "n_test": 18, "dropped_target_rows": 0, "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "scikit-learn": "1.9.1", "pandas": "2.3.3", "numpy": "2.3.5"}}',NULL);
INSERT INTO "runs" VALUES('e707974202b7','72a47bc7f83afccd','failed','mlp','label','binary','{"dataset_id": "72a47bc7f83afccd", "target": "label", "model": "mlp", "task": "auto", "exclude": [], "params": {"epochs": 2}, "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}, "prep": {"impute_numeric": "median", "scaling": "auto", "categorical": "auto", "datetime_parts": true}}','{"optimizer": "adamw", "lr": 0.002, "batch_size": 0, "epochs": 2, "weight_decay": 0.0001, "l1": 0.0, "lr_schedule": "none", "patience": 16, "weight_averaging": 0.5, "restore_best": true, "grad_clip": 1.0, "seed": 0, "device": "auto", "mixed_precision": "auto", "hidden_sizes": [256, 256], "activation": "relu", "dropout": 0.1, "batch_norm": false, "init": "he"}',NULL,'2026-11-29 14:19:15.598698','2026-11-29 14:19:15.599864','2026-11-29 14:19:15.601573','2026-11-29 14:19:15.601048','w-gone',0,2,1,NULL,0,NULL,NULL,NULL,NULL,'{}','{}','{}','{}','Training failed: boom');
INSERT INTO "runs" VALUES('d1b3e1de4635','72a47bc7f83afccd','cancelled','mlp','label','binary','{"dataset_id": "72a47bc7f83afccd", "target": "label", "model": "mlp", "task": "auto", "exclude": [], "params": {}, "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}, "prep": {"impute_numeric": "median", "scaling": "auto", "categorical": "auto", "datetime_parts": true}}','{"optimizer": "adamw", "lr": 0.002, "batch_size": 0, "epochs": 200, "weight_decay": 0.0001, "l1": 0.0, "lr_schedule": "none", "patience": 16, "weight_averaging": 0.5, "restore_best": true, "grad_clip": 1.0, "seed": 0, "device": "auto", "mixed_precision": "auto", "hidden_sizes": [256, 256], "activation": "relu", "dropout": 0.1, "batch_norm": false, "init": "he"}',NULL,'2026-11-29 14:19:15.604848',NULL,'2026-11-29 14:19:15.605973',NULL,NULL,0,200,0,NULL,0,NULL,NULL,NULL,NULL,'{}','{}','{}','{}','Cancelled before it started.');
INSERT INTO "runs" VALUES('5bda07c88d7c','72a47bc7f83afccd','running','mlp','label','binary','{"dataset_id": "72a47bc7f83afccd", "target": "label", "model": "mlp", "task": "auto", "exclude": [], "params": {"epochs": 50}, "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}, "prep": {"impute_numeric": "median", "scaling": "auto", "categorical": "auto", "datetime_parts": true}}','{"optimizer": "adamw", "lr": 0.002, "batch_size": 0, "epochs": 50, "weight_decay": 0.0001, "l1": 0.0, "lr_schedule": "none", "patience": 16, "weight_averaging": 0.5, "restore_best": true, "grad_clip": 1.0, "seed": 0, "device": "auto", "mixed_precision": "auto", "hidden_sizes": [256, 256], "activation": "relu", "dropout": 0.1, "batch_norm": false, "init": "he"}',NULL,'2026-11-29 14:19:15.608549','2026-11-29 14:19:15.609713',NULL,'2026-11-29 14:19:15.611861','99a926ececa8',0,50,2,3,0,NULL,NULL,NULL,NULL,'{}','{}','{}','{}',NULL);
INSERT INTO "runs" VALUES('ad7ca4c3a8c9','72a47bc7f83afccd','queued','random_forest','label','binary','{"dataset_id": "72a47bc7f83afccd", "target": "label", "model": "random_forest", "task": "auto", "exclude": [], "params": {}, "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}, "prep": {"impute_numeric": "median", "scaling": "auto", "categorical": "auto", "datetime_parts": true}}','{"n_estimators": 300, "max_depth": 0, "min_samples_leaf": 1, "max_features": 0.5, "seed": 0}',NULL,'2026-11-29 14:19:15.614265',NULL,NULL,NULL,NULL,0,1,0,NULL,0,NULL,NULL,NULL,NULL,'{}','{}','{}','{}',NULL);
CREATE TABLE workers (
	id VARCHAR(64) NOT NULL, 
	pid INTEGER NOT NULL, 
	hostname VARCHAR(255) NOT NULL, 
	started_at DATETIME NOT NULL, 
	heartbeat_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "workers" VALUES('99a926ececa8',9062,'vm','2026-11-29 14:19:15.609304','2026-11-29 14:19:15.609304');
CREATE INDEX ix_runs_dataset_id ON runs (dataset_id);
CREATE INDEX ix_runs_status_created ON runs (status, created_at);
COMMIT;
