import { Migration } from '@mikro-orm/migrations';

export class Migration20261130023348_user_disabled extends Migration {

  override name = 'Migration20261130023348_user_disabled';

  override up(): void | Promise<void> {
    this.addSql(`alter table \`users\` add column \`disabled\` integer not null default false;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`users\` drop column \`disabled\`;`);
  }

}
