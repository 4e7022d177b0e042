import { Migration } from '@mikro-orm/migrations';

export class Migration20261130161501_audit_user_time extends Migration {

  override name = 'Migration20261130161501_audit_user_time';

  override up(): void | Promise<void> {
    this.addSql(`alter table \`audit_events\` add index \`audit_events_user_id_created_at_index\` (\`user_id\`, \`created_at\`);`);
    this.addSql(`alter table \`audit_events\` drop index \`audit_events_user_id_index\`;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`audit_events\` add index \`audit_events_user_id_index\` (\`user_id\`);`);
    this.addSql(`alter table \`audit_events\` drop index \`audit_events_user_id_created_at_index\`;`);
  }

}
