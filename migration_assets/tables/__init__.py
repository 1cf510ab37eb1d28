"""dg's defs folder (`[tool.dg.project] defs_module`): one folder per table migration, each a
`defs.yaml` declaring a `migration_assets.MigrationComponent` whose attributes are its spec.

`dg scaffold defs migration_assets.MigrationComponent <name>` adds one. Shipped empty: with
no component here (and `MIGRATION_SPEC` unset) the code location is the bundled example.
"""
