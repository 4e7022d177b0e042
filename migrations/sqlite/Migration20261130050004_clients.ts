import { Migration } from '@mikro-orm/migrations';

export class Migration20261130050004_clients extends Migration {

  override name = 'Migration20261130050004_clients';

  override up(): void | Promise<void> {
    this.addSql(`create table \`clients\` (\`id\` text not null primary key, \`name\` text not null, \`type\` text not null, \`secret_hash\` text null, \`audiences\` text not null, \`redirect_uris\` text not null, \`allowed_origins\` text not null, \`scopes\` text not null, \`disabled\` integer not null default false, \`tokens_revoked_at\` datetime null, \`tokens_revoked_reason\` text null, \`created_at\` datetime not null, \`updated_at\` datetime not null);`);

    // The built-in client: PUBLIC, no secret; no audiences stored means AUDIENCE's, whatever it is configured to.
    this.addSql(
      `insert into \`clients\` (\`id\`, \`name\`, \`type\`, \`secret_hash\`, \`audiences\`, \`redirect_uris\`, \`allowed_origins\`, \`scopes\`, \`disabled\`, \`created_at\`, \`updated_at\`) values ('default', 'Default', 'PUBLIC', null, '[]', '[]', '[]', '[]', false, ${Date.now()}, ${Date.now()});`,
    );

    this.addSql(`alter table \`users\` add column \`scopes\` text not null default '';`);

    this.addSql(`alter table \`sessions\` add column \`client_id\` text not null default 'default';`);
    this.addSql(`create index \`sessions_client_id_index\` on \`sessions\` (\`client_id\`);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`clients\`;`);

    this.addSql(`drop index \`sessions_client_id_index\`;`);
    this.addSql(`alter table \`sessions\` drop column \`client_id\`;`);

    this.addSql(`alter table \`users\` drop column \`scopes\`;`);
  }

}
