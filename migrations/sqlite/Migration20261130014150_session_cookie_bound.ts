import { Migration } from '@mikro-orm/migrations';

export class Migration20261130014150_session_cookie_bound extends Migration {

  override name = 'Migration20261130014150_session_cookie_bound';

  override up(): void | Promise<void> {
    this.addSql(`alter table \`sessions\` add column \`cookie_bound\` integer not null default false;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`sessions\` drop column \`cookie_bound\`;`);
  }

}
