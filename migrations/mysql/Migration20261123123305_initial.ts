import { Migration } from '@mikro-orm/migrations';

export class Migration20261123123305_initial extends Migration {

  override name = 'Migration20261123123305_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table \`audit_events\` (\`id\` int unsigned not null auto_increment primary key, \`type\` varchar(40) not null, \`user_id\` varchar(36) null, \`session_id\` varchar(36) null, \`ip_address\` varchar(45) null, \`user_agent\` varchar(512) null, \`detail\` text null, \`created_at\` datetime(3) not null) default character set utf8mb4 engine = InnoDB;`);
    this.addSql(`alter table \`audit_events\` add index \`audit_events_user_id_index\` (\`user_id\`);`);
    this.addSql(`alter table \`audit_events\` add index \`audit_events_created_at_index\` (\`created_at\`);`);

    this.addSql(`create table \`users\` (\`id\` varchar(36) not null, \`email\` varchar(254) collate utf8mb4_bin not null, \`password_hash\` varchar(60) null, \`email_verified\` tinyint(1) not null default false, \`display_name\` varchar(100) null, \`roles\` varchar(64) not null default 'USER', \`created_at\` datetime(3) not null, \`updated_at\` datetime(3) not null, primary key (\`id\`)) default character set utf8mb4 engine = InnoDB;`);
    this.addSql(`alter table \`users\` add unique \`users_email_unique\` (\`email\`);`);

    this.addSql(`create table \`sessions\` (\`id\` varchar(36) not null, \`user_id\` varchar(36) not null, \`refresh_token_hash\` varchar(64) not null, \`refresh_generation\` int unsigned not null default 0, \`refresh_tag_key\` varchar(43) not null, \`rotated_at\` datetime(3) null, \`created_at\` datetime(3) not null, \`last_used_at\` datetime(3) not null, \`expires_at\` datetime(3) not null, \`max_expires_at\` datetime(3) not null, \`user_agent\` varchar(512) null, \`ip_address\` varchar(45) null, \`revoked_at\` datetime(3) null, \`revoked_reason\` varchar(32) null, primary key (\`id\`)) default character set utf8mb4 engine = InnoDB;`);
    this.addSql(`alter table \`sessions\` add index \`sessions_user_id_index\` (\`user_id\`);`);
    this.addSql(`alter table \`sessions\` add index \`sessions_revoked_at_index\` (\`revoked_at\`);`);

    this.addSql(`alter table \`sessions\` add constraint \`sessions_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`sessions\` drop foreign key \`sessions_user_id_foreign\`;`);

    this.addSql(`drop table if exists \`audit_events\`;`);
    this.addSql(`drop table if exists \`users\`;`);
    this.addSql(`drop table if exists \`sessions\`;`);
  }

}
