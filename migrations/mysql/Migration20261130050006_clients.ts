import { Migration } from '@mikro-orm/migrations';

export class Migration20261130050006_clients extends Migration {

  override name = 'Migration20261130050006_clients';

  override up(): void | Promise<void> {
    this.addSql(`create table \`clients\` (\`id\` varchar(64) not null, \`name\` varchar(200) not null, \`type\` varchar(16) not null, \`secret_hash\` varchar(64) null, \`audiences\` text not null, \`redirect_uris\` text not null, \`allowed_origins\` text not null, \`scopes\` text not null, \`disabled\` tinyint(1) not null default false, \`tokens_revoked_at\` datetime(3) null, \`tokens_revoked_reason\` varchar(32) null, \`created_at\` datetime(3) not null, \`updated_at\` datetime(3) not null, primary key (\`id\`)) default character set utf8mb4 engine = InnoDB;`);

    // The built-in client: PUBLIC, no secret; no audiences stored means AUDIENCE's, whatever it is configured to.
    this.addSql(
      `insert into \`clients\` (\`id\`, \`name\`, \`type\`, \`secret_hash\`, \`audiences\`, \`redirect_uris\`, \`allowed_origins\`, \`scopes\`, \`disabled\`, \`created_at\`, \`updated_at\`) values ('default', 'Default', 'PUBLIC', null, '[]', '[]', '[]', '[]', false, utc_timestamp(3), utc_timestamp(3));`,
    );

    this.addSql(`alter table \`users\` add \`scopes\` varchar(2048) not null default '';`);

    this.addSql(`alter table \`sessions\` add \`client_id\` varchar(64) not null default 'default';`);
    this.addSql(`alter table \`sessions\` add index \`sessions_client_id_index\` (\`client_id\`);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`clients\`;`);

    this.addSql(`alter table \`sessions\` drop index \`sessions_client_id_index\`;`);
    this.addSql(`alter table \`sessions\` drop column \`client_id\`;`);

    this.addSql(`alter table \`users\` drop column \`scopes\`;`);
  }

}
