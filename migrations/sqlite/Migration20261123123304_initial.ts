import { Migration } from '@mikro-orm/migrations';

export class Migration20261123123304_initial extends Migration {

  override name = 'Migration20261123123304_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table \`audit_events\` (\`id\` integer not null primary key autoincrement, \`type\` text not null, \`user_id\` text null, \`session_id\` text null, \`ip_address\` text null, \`user_agent\` text null, \`detail\` text null, \`created_at\` datetime not null);`);
    this.addSql(`create index \`audit_events_user_id_index\` on \`audit_events\` (\`user_id\`);`);
    this.addSql(`create index \`audit_events_created_at_index\` on \`audit_events\` (\`created_at\`);`);

    this.addSql(`create table \`users\` (\`id\` text not null primary key, \`email\` text not null, \`password_hash\` text null, \`email_verified\` integer not null default false, \`display_name\` text null, \`roles\` text not null default 'USER', \`created_at\` datetime not null, \`updated_at\` datetime not null);`);
    this.addSql(`create unique index \`users_email_unique\` on \`users\` (\`email\`);`);

    this.addSql(`create table \`sessions\` (\`id\` text not null primary key, \`user_id\` text not null, \`refresh_token_hash\` text not null, \`refresh_generation\` integer not null default 0, \`refresh_tag_key\` text not null, \`rotated_at\` datetime null, \`created_at\` datetime not null, \`last_used_at\` datetime not null, \`expires_at\` datetime not null, \`max_expires_at\` datetime not null, \`user_agent\` text null, \`ip_address\` text null, \`revoked_at\` datetime null, \`revoked_reason\` text null, constraint \`sessions_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`sessions_user_id_index\` on \`sessions\` (\`user_id\`);`);
    this.addSql(`create index \`sessions_revoked_at_index\` on \`sessions\` (\`revoked_at\`);`);
  }

  override down(): void | Promise<void> {

    this.addSql(`drop table if exists \`audit_events\`;`);
    this.addSql(`drop table if exists \`users\`;`);
    this.addSql(`drop table if exists \`sessions\`;`);
  }

}
