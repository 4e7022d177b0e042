import { Migration } from '@mikro-orm/migrations';

export class Migration20261123123746_linked_accounts extends Migration {

  override name = 'Migration20261123123746_linked_accounts';

  override up(): void | Promise<void> {
    this.addSql(`create table \`linked_accounts\` (\`id\` varchar(36) not null, \`user_id\` varchar(36) not null, \`provider\` varchar(64) collate utf8mb4_bin not null, \`provider_user_id\` varchar(255) collate utf8mb4_bin not null, \`email\` varchar(254) null, \`linked_at\` datetime(3) not null, primary key (\`id\`)) default character set utf8mb4 engine = InnoDB;`);
    this.addSql(`alter table \`linked_accounts\` add index \`linked_accounts_user_id_index\` (\`user_id\`);`);
    this.addSql(`alter table \`linked_accounts\` add unique \`linked_accounts_provider_provider_user_id_unique\` (\`provider\`, \`provider_user_id\`);`);
    this.addSql(`alter table \`linked_accounts\` add unique \`linked_accounts_user_id_provider_unique\` (\`user_id\`, \`provider\`);`);

    this.addSql(`alter table \`linked_accounts\` add constraint \`linked_accounts_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`linked_accounts\`;`);
  }

}
