import { Migration } from '@mikro-orm/migrations';

export class Migration20261130023350_user_disabled extends Migration {

  override name = 'Migration20261130023350_user_disabled';

  override up(): void | Promise<void> {
    this.addSql(`alter table \`users\` add \`disabled\` tinyint(1) not null default false;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`users\` drop column \`disabled\`;`);
  }

}
