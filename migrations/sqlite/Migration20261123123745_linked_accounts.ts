import { Migration } from '@mikro-orm/migrations';

export class Migration20261123123745_linked_accounts extends Migration {

  override name = 'Migration20261123123745_linked_accounts';

  override up(): void | Promise<void> {
    this.addSql(`create table \`linked_accounts\` (\`id\` text not null primary key, \`user_id\` text not null, \`provider\` text not null, \`provider_user_id\` text not null, \`email\` text null, \`linked_at\` datetime not null, constraint \`linked_accounts_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`linked_accounts_user_id_index\` on \`linked_accounts\` (\`user_id\`);`);
    this.addSql(`create unique index \`linked_accounts_provider_provider_user_id_unique\` on \`linked_accounts\` (\`provider\`, \`provider_user_id\`);`);
    this.addSql(`create unique index \`linked_accounts_user_id_provider_unique\` on \`linked_accounts\` (\`user_id\`, \`provider\`);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`linked_accounts\`;`);
  }

}
