# goticket on Google Cloud: Cloud SQL for PostgreSQL, the server on Cloud Run, and the
# schema migration as a Cloud Run job. Secrets (the database URL with its password, the
# token signing key) live in Secret Manager and reach the containers as files.
#
# The generated password and key are also in the OpenTofu state: keep the state in an
# encrypted backend with restricted access (README.md).
# Checked by an HCL parser and checkov in .ci/run (scripts/check-deploy.sh).

provider "google" {
  project = var.project_id
  region  = var.region
}

locals {
  # Where the containers find their secrets and the database's socket.
  db_url_dir = "/etc/goticket/db"
  jwt_dir    = "/etc/goticket/jwt"
  socket_dir = "/cloudsql"
  server_args = [
    "serve",
    "--addr", "0.0.0.0:8080",
    "--json-logs",
    "--jwt-key-file", "${local.jwt_dir}/jwt-key.pem",
    # Cloud Run gives a stopping instance 10 s after SIGTERM.
    "--shutdown-grace", "8s",
  ]
  otlp_env = var.otlp_endpoint == "" ? {} : {
    OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint
    GOTICKET_TRACE_SAMPLE_RATIO = tostring(var.trace_sample_ratio)
  }
}

# --- The APIs the module uses, switched on in the project (and left on on destroy) ---

resource "google_project_service" "needed" {
  for_each           = toset(["run.googleapis.com", "sqladmin.googleapis.com", "secretmanager.googleapis.com", "iam.googleapis.com"])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# --- The database ----------------------------------------------------------------

resource "google_sql_database_instance" "main" {
  # checkov:skip=CKV_GCP_79:PostgreSQL 15 is the version goticket's test suite runs against (CI and Compose); raise it with them.
  # checkov:skip=CKV_GCP_111:Statement logging is off on purpose: statements carry customers' emails and ticket codes.
  # checkov:skip=CKV2_GCP_13:log_duration writes a line per statement, thousands a second in a sale; slow statements show in Query Insights instead.
  name                = "${var.name}-pg"
  database_version    = "POSTGRES_15"
  region              = var.region
  deletion_protection = var.deletion_protection
  depends_on          = [google_project_service.needed]

  settings {
    tier              = var.db_tier
    availability_type = var.db_high_availability ? "REGIONAL" : "ZONAL"
    disk_size         = var.db_disk_size_gb
    disk_autoresize   = true
    disk_type         = "PD_SSD"

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      backup_retention_settings {
        retained_backups = 14
      }
    }

    # checkov:skip=CKV_GCP_60:The public address has no authorized networks: only the Cloud SQL connector (IAM-checked, TLS) reaches it, which is how Cloud Run connects without a VPC.
    ip_configuration {
      ipv4_enabled = true
      # The connector presents a client certificate; nothing else gets in.
      ssl_mode = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    # What checkov's Cloud SQL rules ask PostgreSQL to log (connections, lock waits,
    # temporary files), and statement logging off (statements carry customers' emails).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "warning"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }
}

resource "google_sql_database" "goticket" {
  name     = "goticket"
  instance = google_sql_database_instance.main.name
}

# Letters and digits only, so the password goes into the URL as it is.
resource "random_password" "db" {
  length  = 32
  special = false
}

resource "google_sql_user" "goticket" {
  name     = "goticket"
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
}

# --- Secrets -----------------------------------------------------------------------

resource "google_secret_manager_secret" "database_url" {
  secret_id  = "${var.name}-database-url"
  depends_on = [google_project_service.needed]
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "database_url" {
  secret = google_secret_manager_secret.database_url.id
  # libpq's URL form for a Unix socket: no host, the socket directory as `host`.
  secret_data = "postgres://${google_sql_user.goticket.name}:${random_password.db.result}@/${google_sql_database.goticket.name}?host=${local.socket_dir}/${google_sql_database_instance.main.connection_name}"
}

# The server's token signing key (EdDSA); its public half is served at
# /.well-known/jwks.json.
resource "tls_private_key" "jwt" {
  algorithm = "ED25519"
}

resource "google_secret_manager_secret" "jwt_key" {
  secret_id  = "${var.name}-jwt-key"
  depends_on = [google_project_service.needed]
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "jwt_key" {
  secret      = google_secret_manager_secret.jwt_key.id
  secret_data = tls_private_key.jwt.private_key_pem_pkcs8
}

# --- Identity: the containers' service account may connect and read two secrets ---

resource "google_service_account" "run" {
  account_id   = "${var.name}-run"
  display_name = "goticket server and migration job"
}

resource "google_project_iam_member" "sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.run.email}"
}

resource "google_secret_manager_secret_iam_member" "database_url" {
  secret_id = google_secret_manager_secret.database_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.run.email}"
}

resource "google_secret_manager_secret_iam_member" "jwt_key" {
  secret_id = google_secret_manager_secret.jwt_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.run.email}"
}

# --- The migration job: `gcloud run jobs execute` (the output migrate_command) ------

resource "google_cloud_run_v2_job" "migrate" {
  name                = "${var.name}-migrate"
  location            = var.region
  deletion_protection = false

  template {
    template {
      service_account = google_service_account.run.email
      max_retries     = 3
      timeout         = "600s"

      volumes {
        name = "cloudsql"
        cloud_sql_instance {
          instances = [google_sql_database_instance.main.connection_name]
        }
      }
      volumes {
        name = "database-url"
        secret {
          secret = google_secret_manager_secret.database_url.secret_id
          items {
            version = "latest"
            path    = "database-url"
          }
        }
      }

      containers {
        image   = var.image
        command = ["/usr/local/bin/goticket"]
        args    = ["migrate"]
        env {
          name  = "GOTICKET_DB_FILE"
          value = "${local.db_url_dir}/database-url"
        }
        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }
        volume_mounts {
          name       = "cloudsql"
          mount_path = local.socket_dir
        }
        volume_mounts {
          name       = "database-url"
          mount_path = local.db_url_dir
        }
      }
    }
  }

  depends_on = [
    google_project_iam_member.sql_client,
    google_secret_manager_secret_iam_member.database_url,
    google_secret_manager_secret_version.database_url,
  ]
}

# --- The server ----------------------------------------------------------------------

resource "google_cloud_run_v2_service" "api" {
  name                = "${var.name}-api"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false

  template {
    service_account                  = google_service_account.run.email
    max_instance_request_concurrency = 80
    timeout                          = "60s"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.main.connection_name]
      }
    }
    volumes {
      name = "database-url"
      secret {
        secret = google_secret_manager_secret.database_url.secret_id
        items {
          version = "latest"
          path    = "database-url"
        }
      }
    }
    volumes {
      name = "jwt-key"
      secret {
        secret = google_secret_manager_secret.jwt_key.secret_id
        items {
          version = "latest"
          path    = "jwt-key.pem"
        }
      }
    }

    containers {
      image   = var.image
      command = ["/usr/local/bin/goticket"]
      args    = local.server_args

      ports {
        container_port = 8080
      }
      env {
        name  = "GOTICKET_DB_FILE"
        value = "${local.db_url_dir}/database-url"
      }
      dynamic "env" {
        for_each = local.otlp_env
        content {
          name  = env.key
          value = env.value
        }
      }
      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # CPU between requests too: the background task that expires overdue holds
        # runs on its own timer.
        cpu_idle = false
      }
      # Ready when the database answers; alive while the process answers. The server
      # listens only after its start-up migration (under a lock, behind the migration
      # job's): Cloud Run allows a startup probe 240 s at most.
      startup_probe {
        http_get {
          path = "/readyz"
        }
        period_seconds    = 5
        timeout_seconds   = 3
        failure_threshold = 48
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds  = 10
        timeout_seconds = 3
      }
      volume_mounts {
        name       = "cloudsql"
        mount_path = local.socket_dir
      }
      volume_mounts {
        name       = "database-url"
        mount_path = local.db_url_dir
      }
      volume_mounts {
        name       = "jwt-key"
        mount_path = local.jwt_dir
      }
    }
  }

  depends_on = [
    google_project_iam_member.sql_client,
    google_secret_manager_secret_iam_member.database_url,
    google_secret_manager_secret_iam_member.jwt_key,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_version.jwt_key,
  ]
}

# The API authenticates its callers itself (JWT bearer tokens); Cloud Run's own IAM
# check in front of it is opened only when var.public says so.
resource "google_cloud_run_v2_service_iam_member" "public" {
  # checkov:skip=CKV_GCP_102:A public ticket shop is the point; every route but health, readiness, metrics and the document needs goticket's own token.
  count    = var.public ? 1 : 0
  name     = google_cloud_run_v2_service.api.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}
