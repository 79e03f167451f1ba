# What the module makes, for the operator and for other modules.

output "service_url" {
  description = "The HTTPS address of the API (Cloud Run's own; map a domain to it)."
  value       = google_cloud_run_v2_service.api.uri
}

output "migrate_command" {
  description = "Runs the schema migration (after the first apply and before every new image)."
  value       = "gcloud run jobs execute ${google_cloud_run_v2_job.migrate.name} --region ${var.region} --project ${var.project_id} --wait"
}

output "database_connection_name" {
  description = "The Cloud SQL instance's connection name (project:region:instance), for the Cloud SQL Auth Proxy."
  value       = google_sql_database_instance.main.connection_name
}

output "service_account_email" {
  description = "The identity the server and the migration job run as."
  value       = google_service_account.run.email
}

output "jwt_public_key_pem" {
  description = "The public half of the token signing key (also served at /.well-known/jwks.json)."
  value       = tls_private_key.jwt.public_key_pem
}

output "database_url_secret" {
  description = "The Secret Manager secret holding the database URL (password included)."
  value       = google_secret_manager_secret.database_url.id
}
