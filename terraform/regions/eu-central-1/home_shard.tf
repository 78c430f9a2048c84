# After this region's cutover (`migrate phase run cutover --region eu-central-1`) its cluster writes a global
# cluster of its own, created by the cutover. With `home_shard = true` in this root's tfvars the next
# plan imports it (no change to the running shard) and Terraform keeps it from then on.
import {
  for_each = var.home_shard ? toset(["home"]) : toset([])
  to       = module.region.aws_rds_global_cluster.home[each.key]
  id       = "${var.name_prefix}-home-${var.region}"
}
