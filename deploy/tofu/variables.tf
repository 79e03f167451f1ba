# Every input of the module. Each is documented here and in README.md.

variable "project_id" {
  description = "The Google Cloud project that holds everything this module creates."
  type        = string
}

variable "region" {
  description = "The region of the database, the service and the migration job, like europe-west1."
  type        = string
  default     = "europe-west1"
}

variable "name" {
  description = "Prefix of every resource's name (lower-case letters, digits and hyphens)."
  type        = string
  default     = "goticket"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2 to 21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "image" {
  description = "The goticket container image (built from the repository's Dockerfile), by digest: REGION-docker.pkg.dev/PROJECT/REPO/goticket@sha256:..."
  type        = string
}

variable "db_tier" {
  description = "Cloud SQL machine tier of the PostgreSQL instance."
  type        = string
  default     = "db-custom-2-7680"
}

variable "db_disk_size_gb" {
  description = "The database's initial disk size in GB (it grows by itself)."
  type        = number
  default     = 20
}

variable "db_high_availability" {
  description = "Run the database with a standby in a second zone (REGIONAL) rather than in one zone."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to destroy the database instance (set to false, apply, then destroy, to remove it)."
  type        = bool
  default     = true
}

variable "min_instances" {
  description = "Fewest server instances kept running (at least 1 keeps the hold sweeper running)."
  type        = number
  default     = 1
  validation {
    condition     = var.min_instances >= 1
    error_message = "min_instances must be at least 1: the server's background task expires overdue holds."
  }
}

variable "max_instances" {
  description = "Most server instances at once; each holds up to 10 database connections."
  type        = number
  default     = 10
}

variable "cpu" {
  description = "CPU limit of one server instance (Cloud Run's format, like \"2\")."
  type        = string
  default     = "2"
}

variable "memory" {
  description = "Memory limit of one server instance (like \"1Gi\"); each concurrent password hash takes 19 MiB."
  type        = string
  default     = "1Gi"
}

variable "public" {
  description = "Let anyone on the internet reach the service (it has its own token authentication); false keeps it to IAM-authorized callers."
  type        = bool
  default     = true
}

variable "otlp_endpoint" {
  description = "An OpenTelemetry collector (http://HOST:4318) to export traces to; empty exports none."
  type        = string
  default     = ""
}

variable "trace_sample_ratio" {
  description = "The share of traces exported, 0 to 1, when otlp_endpoint is set."
  type        = number
  default     = 0.1
  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio must be between 0 and 1."
  }
}
