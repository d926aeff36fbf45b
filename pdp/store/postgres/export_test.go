package postgres

// MigrationLockKey lets the tests hold the migration lock as another
// replica would.
const MigrationLockKey = migrationLockKey
